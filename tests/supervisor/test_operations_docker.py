"""Day-two commands (#20) through the real CLI against a real daemon on real Docker: env and
secrets, plan, routes --explain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    free_port,
    mine,
    wait_serving,
    write_config,
)
from tests.utils import Load, get

pytestmark = pytest.mark.docker


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120)


def container_env(docker_client: Any, config: Path, release: int) -> dict[str, str]:
    filters = mine(config)  # only this release's: the old one's may vanish while listed
    filters["label"] = [*filters["label"], f"dockyard.release={release}", "dockyard.process=web"]
    for c in docker_client.containers.list(filters=filters):
        return dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
    raise AssertionError(f"no web container of release {release}")


async def test_env_set_unset_restart_without_downtime_and_keep_secrets_out(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    secrets = tmp_path / "web.env"
    secrets.write_text("FROM_FILE=filevalue\n")
    os.chmod(secrets, 0o600)
    apps = app_toml("web", app_images["v1"], 'PLAIN = "toml"')
    config = write_config(tmp_path, port, apps.replace("retire_after", 'env_file = "web.env"\nretire_after'))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        async with Load(f"http://127.0.0.1:{port}/", "web.test", rate=100) as load:
            done = await asyncio.to_thread(cli, config, "env", "set", "web", "TOKEN=s3cret=x", "PLAIN=over")
            await asyncio.sleep(0.2)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "-----> web: env PLAIN TOKEN" in done.stdout and "deployed web release 2" in done.stdout
        assert load.failures == [], load.failures[:5]
        env = container_env(docker_client, config, 2)
        assert (env["TOKEN"], env["PLAIN"], env["FROM_FILE"]) == ("s3cret=x", "over", "filevalue")

        listed = cli(config, "env", "web")
        assert listed.returncode == 0 and "s3cret" not in listed.stdout
        assert "TOKEN" in listed.stdout and "overlay" in listed.stdout and "env_file" in listed.stdout
        assert "s3cret=x" in cli(config, "env", "web", "--show").stdout
        got = cli(config, "env", "get", "web", "TOKEN")
        assert (got.returncode, got.stdout) == (0, "s3cret=x\n")

        for args in (("ps",), ("releases", "web"), ("releases", "web", "--json"), ("status", "--json")):
            out = cli(config, *args)
            assert out.returncode == 0 and "s3cret" not in out.stdout, args
        assert "s3cret" not in (tmp_path / "daemon.log").read_text()
        assert os.stat(tmp_path / "state" / "dockyard.db").st_mode & 0o077 == 0

        quiet = cli(config, "env", "unset", "web", "TOKEN", "--no-restart")
        assert quiet.returncode == 0 and "not restarted" in quiet.stdout
        assert [r["number"] for r in daemon.client().get("/v1/apps/web/releases")][0] == 2

        for args, message in [
            (("env", "set", "nope", "A=1"), "unknown app 'nope'"),
            (("env", "set", "web", "NOEQUALS"), "expected KEY=VALUE, got 'NOEQUALS'"),
            (("env", "set", "web", "1A=x"), "bad env var name '1A'"),
            (("env", "unset", "web", "FROM_FILE"), "FROM_FILE is not set by `dockyard env set`"),
            (("env", "get", "web", "TOKEN"), "app 'web' has no env var TOKEN"),
        ]:
            bad = cli(config, *args)
            assert bad.returncode == 1 and message in bad.stderr, (args, bad.stderr)
            assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert [r["number"] for r in daemon.client().get("/v1/apps/web/releases")][0] == 2


async def test_plan_exit_codes_and_routes_explain(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        same = cli(config, "plan")
        assert (same.returncode, same.stdout) == (0, "no changes\n"), same.stderr
        text = config.read_text()
        config.write_text(text.replace('image = "', 'drain_timeout = 5\nimage = "', 1))
        changed = cli(config, "plan")
        assert changed.returncode == 2 and changed.stdout == "changed   web (drain_timeout): redeploy\n"
        assert [r["number"] for r in daemon.client().get("/v1/apps/web/releases")] == [1]
        config.write_text(text + "\n[apps.broken]\n")
        broken = cli(config, "plan")
        assert broken.returncode == 1 and "apps.broken" in broken.stderr
        config.write_text(text)

        served = cli(config, "routes", "--explain", "http://web.test/anything")
        assert served.returncode == 0, served.stderr
        assert "app       web" in served.stdout and "release   1" in served.stdout
        assert "host 'web.test' (exact), path prefix '/'" in served.stdout
        none = cli(config, "routes", "--explain", "http://other.test/")
        assert none.returncode == 1 and "the proxy answers 404" in none.stdout


async def test_maintenance_on_off_survives_a_restart_and_error_pages_answer(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "503.html").write_text("<h1>our own 503</h1>\n")
    apps = app_toml("web", app_images["v1"]).replace("retire_after", 'error_pages = "pages"\nretire_after')
    config = write_config(tmp_path, port, apps)
    base = f"http://127.0.0.1:{port}/"
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        on = cli(config, "maintenance", "on", "web", "--message", "Upgrading the database", "--retry-after", "120")
        assert on.returncode == 0 and "maintenance on (503, Retry-After 120s)" in on.stdout, on.stderr
        status, body = await get(base, "web.test")
        assert status == 503 and "Upgrading the database" in body
        assert len(docker_client.containers.list(filters=mine(config))) == 2  # still up
        assert "maintenance on: Upgrading the database  retry-after 120s" in cli(config, "status").stdout
        explained = cli(config, "routes", "--explain", "http://web.test/")
        assert "maintenance mode" in explained.stdout

        daemon.signal(signal.SIGTERM)
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        status, body = await get(base, "web.test")
        assert status == 503 and "Upgrading the database" in body  # kept in SQLite

        off = cli(config, "maintenance", "off", "web")
        assert off.returncode == 0 and "maintenance off" in off.stdout
        assert (await get(base, "web.test"))[0] == 200  # at once

        bad = cli(config, "maintenance", "on", "nope")
        assert bad.returncode == 1 and bad.stderr == "dockyard: unknown app 'nope' (not in " \
            f"{config})\n"

        assert cli(config, "stop", "web").returncode == 0
        status, body = await get(base, "web.test")
        assert (status, body) == (503, "<h1>our own 503</h1>\n")
