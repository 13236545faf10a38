"""After the deploy, on real Docker: crashes, readiness, scale, daemon restarts, kill -9, reload."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.cli.client import ControlClient
from supervisor.config.loader import load_config
from supervisor.deploy.watch import Watcher
from supervisor.model.errors import ControlError
from tests.conftest import SESSION
from tests.supervisor.test_deploy_docker import HOST, app_def
from tests.utils import TEST_WORKERS, Load, get, make_config, stack

pytestmark = pytest.mark.docker


def serving_ids(s: Any, app: str = "web") -> set[str]:
    return {c.id for c in s.sup.serving[app].containers}


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_killed_web_container_leaves_routes_and_comes_back(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        watcher = Watcher(s.sup.ctx, period=3600)
        watcher.start()
        await asyncio.sleep(0.3)  # the event stream is attached
        victim = sorted(s.sup.serving["web"].containers, key=lambda c: c.name)[0]
        target = f"127.0.0.1:{victim.ports[5000]}"
        try:
            async with Load(s.base + "/", HOST, rate=200) as load:
                await asyncio.sleep(0.3)
                killed_at = time.monotonic()
                docker_client.containers.get(victim.id).kill()
                await wait_for(lambda: target not in s.sup.targets("web"), 10, "route removal")
                removed_after = time.monotonic() - killed_at
                await wait_for(lambda: len(s.sup.targets("web")) == 2, 15, "the container back")
                await asyncio.sleep(0.3)
            assert load.failures == [], load.failures[:5]
            # Reported, not asserted (timings belong in bench/): the budget is 1 s.
            print(f"\nkilled container left the route table after {removed_after * 1000:.0f} ms")
            assert serving_ids(s) >= {victim.id}  # the same container, restarted
            assert s.sup.ctx.fleet.restarts(victim.id) == 1
            assert s.sup.ctx.fleet.last_exit(victim.id) == 137
            rows = {r["name"]: r for r in await s.sup.ps("web")}
            assert rows[victim.name]["restarts"] == 1 and rows[victim.name]["exit_code"] == 137
        finally:
            await watcher.close()


async def test_readiness_failure_takes_target_out_and_recovery_puts_it_back(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    checks = {"web": [
        {"type": "startup", "path": "/health", "attempts": 3, "wait": 1},
        {"type": "readiness", "name": "ready-file", "command": ["cat", "/www/health"], "attempts": 2},
    ]}
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], healthchecks=checks)})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        watcher = Watcher(s.sup.ctx, period=0.1)
        watcher.start()
        try:
            sick = sorted(s.sup.serving["web"].containers, key=lambda c: c.name)[0]
            target = f"127.0.0.1:{sick.ports[5000]}"
            docker_client.containers.get(sick.id).exec_run(["mv", "/www/health", "/www/h.off"])
            await wait_for(lambda: target not in s.sup.targets("web"), 5, "target out of rotation")
            assert len(s.sup.targets("web")) == 1
            async with Load(s.base + "/", HOST, rate=100) as load:
                await asyncio.sleep(0.5)
            assert load.failures == []
            assert {b.split()[1] for _, _, _, b in load.results} == {
                c.id[:12] for c in s.sup.serving["web"].containers if c.id != sick.id
            }
            docker_client.containers.get(sick.id).exec_run(["mv", "/www/h.off", "/www/health"])
            await wait_for(lambda: target in s.sup.targets("web"), 5, "target back in rotation")
        finally:
            await watcher.close()


async def test_scale_up_and_down_under_load(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], processes={"web": {"scale": 1}})})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        async with Load(s.base + "/", HOST, rate=200) as load:
            assert await s.sup.scale("web", {"web": 3}) == {"web": 3}
            assert len(s.sup.targets("web")) == 3
            await asyncio.sleep(0.5)
            assert await s.sup.scale("web", {"web": 1}) == {"web": 1}
            assert len(s.sup.targets("web")) == 1
            await asyncio.sleep(0.5)
        await s.sup.retirer.wait_idle()
        assert load.failures == [], load.failures[:5]
        assert len({b.split()[1] for _, _, _, b in load.results}) == 3
        assert s.state.scale("web") == {"web": 1}
        # The scale persists: the next deploy starts one web container.
        assert (await s.sup.deploy("web", app_images["v2"])).ok
        assert len(s.sup.targets("web")) == 1


# --- the daemon as a real process -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The daemon tests run the proxy in TEST_WORKERS worker processes (tests/utils.py).
WORKERS = TEST_WORKERS


def write_config(tmp_path: Path, port: int, apps: str) -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nstate_dir = "state"\n'
        f'instance = "t{SESSION}-{tmp_path.name[-16:]}"\n\n[proxy]\nworkers = {WORKERS}\n\n{apps}'
    )
    return path


def kill_workers(config: Path) -> None:
    """Proxy workers outlive a daemon killed with -9 (by design): a test kills them itself."""
    for path in (load_config(config).server.state_dir / "workers").glob("*.sock"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(path.stem), signal.SIGKILL)


def app_toml(name: str, image: str, env: str = "", delay: int = 0) -> str:
    return f"""
[apps.{name}]
image = "{image}"
hosts = ["{name}.test"]
retire_after = 0
stop_timeout = 2
env = {{ {env} }}
[apps.{name}.processes.web]
scale = 2
[[apps.{name}.healthchecks.web]]
path = "/health"
attempts = 3
wait = 1
initialDelay = {delay}
"""


class Daemon:
    """`dockyard serve` as a real process. As a context manager it kills the process and removes
    its containers on the way out, even when the test failed."""

    def __init__(self, config: Path, docker_client: Any = None) -> None:
        self.config = config
        self.docker_client = docker_client
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "daemon.log"

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        kill_workers(self.config)
        if self.docker_client is not None:
            cleanup(self.docker_client, self.config)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "serve", "-c", str(self.config)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        client = ControlClient(load_config(self.config).server.control_socket, timeout=2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                client.get("/v1/status")
                return
            except Exception:
                time.sleep(0.05)
        raise AssertionError(f"daemon did not start: {self.log.read_text()[-2000:]}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.wait(timeout=20)

    def client(self) -> ControlClient:
        return ControlClient(load_config(self.config).server.control_socket, timeout=None)


def mine(config: Path, app: str = "web") -> dict[str, list[str]]:
    instance = load_config(config).server.instance
    return {"label": [f"dockyard.instance={instance}", f"dockyard.app={app}"]}


def cleanup(docker_client: Any, config: Path) -> None:
    instance = load_config(config).server.instance
    for c in docker_client.containers.list(all=True, filters={"label": f"dockyard.instance={instance}"}):
        c.remove(force=True)


async def wait_serving(client: ControlClient, app: str, n: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            routes = {r["app"]: r for r in client.get("/v1/routes")}
        except ControlError:  # the daemon is still starting
            await asyncio.sleep(0.05)
            continue
        if len(routes.get(app, {}).get("targets") or []) == n:
            return list(routes[app]["targets"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"{app} never had {n} targets")


async def test_daemon_restart_keeps_containers_and_routes(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        targets = await wait_serving(daemon.client(), "web", 2)
        ids = {r["id"] for r in daemon.client().get("/v1/ps")}
        base = f"http://127.0.0.1:{port}"
        async with Load(base + "/", "web.test", rate=100) as load:
            await asyncio.sleep(0.3)
            daemon.signal(signal.SIGTERM)
            running = docker_client.containers.list(filters=mine(config))
            assert {c.id[:12] for c in running} >= ids
            daemon.start()
            assert sorted(await wait_serving(daemon.client(), "web", 2)) == sorted(targets)
            settled = time.monotonic()
            await asyncio.sleep(0.5)
        assert {r["id"] for r in daemon.client().get("/v1/ps")} == ids
        after = [r for r in load.results if r[0] > settled]
        assert after and all(status == 200 for _, _, status, _ in after)
        assert (await get(base + "/", "web.test"))[0] == 200
        daemon.signal(signal.SIGINT)


async def test_kill_9_during_checks_leaves_no_orphans_and_one_release(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    # Checks that wait 3 s before their first attempt: kill -9 the daemon while v2's run.
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"], delay=3))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2, timeout=60)  # 3 s checks; slow under load
        v1_ids = {r["id"] for r in daemon.client().get("/v1/ps")}
        deploy = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "deploy", "web", "--image", app_images["v2"],
             "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            names = {c.name for c in docker_client.containers.list(filters=mine(config))}
            if any(n.endswith(".r2") for n in names):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        deploy.wait(timeout=10)
        assert any(c.name.endswith(".r2") for c in docker_client.containers.list(
            filters=mine(config)))  # the half-deployed v2 is there
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        left = docker_client.containers.list(all=True, filters=mine(config))
        assert {c.id[:12] for c in left} == v1_ids
        releases = daemon.client().get("/v1/apps/web/releases")
        assert [r["status"] for r in releases] == ["failed", "active"]
        assert "interrupted" in releases[0]["reason"]
        status, body = await get(f"http://127.0.0.1:{port}/", "web.test")
        assert status == 200 and body.startswith("v1 ")
        daemon.signal(signal.SIGTERM)


async def test_reload_changing_one_apps_env_redeploys_only_that_app(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    apps = app_toml("one", app_images["v1"], 'K = "1"') + app_toml("two", app_images["v1"])
    config = write_config(tmp_path, port, apps)
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "one", 2)
        await wait_serving(daemon.client(), "two", 2)
        before = {r["app"]: r["release"] for r in daemon.client().get("/v1/routes")}
        two_ids = {r["id"] for r in daemon.client().get("/v1/ps?app=two")}
        config.write_text(config.read_text().replace('K = "1"', 'K = "2"'))
        async with Load(f"http://127.0.0.1:{port}/", "one.test", rate=100) as load:
            result = daemon.client().post("/v1/reload")
        assert result["plan"]["changed"] == ["one"]
        assert result["deploys"]["one"]["ok"]
        after = {r["app"]: r["release"] for r in daemon.client().get("/v1/routes")}
        assert after == {"one": before["one"] + 1, "two": before["two"]}
        assert {r["id"] for r in daemon.client().get("/v1/ps?app=two")} == two_ids
        assert load.failures == []
        # A broken file changes nothing and says why.
        client = daemon.client()  # (reads the config: before it breaks)
        good = config.read_text()
        config.write_text(good + "\n[apps.one.processes.web]\nscale = 'many'\n")
        with pytest.raises(ControlError, match="invalid config") as err:
            client.post("/v1/reload")
        assert "Cannot declare" in str(err.value) and str(config) in str(err.value)
        assert {r["app"]: r["release"] for r in client.get("/v1/routes")} == after
        config.write_text(good)
        daemon.signal(signal.SIGTERM)


async def test_container_that_died_while_the_daemon_was_down_is_restarted_on_start(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        rows = daemon.client().get("/v1/ps")
        ids = {r["id"] for r in rows}
        daemon.signal(signal.SIGTERM)
        victim = docker_client.containers.get(rows[0]["id"])
        victim.kill()
        daemon.start()
        # It starts out of rotation (the quick probe), then the restart policy brings it back.
        await wait_serving(daemon.client(), "web", 2, timeout=20)
        after = {r["id"]: r for r in daemon.client().get("/v1/ps")}
        assert set(after) == ids
        assert after[rows[0]["id"]]["status"] == "running"
        assert after[rows[0]["id"]]["restarts"] >= 1
        assert (await get(f"http://127.0.0.1:{port}/", "web.test"))[0] == 200
        daemon.signal(signal.SIGTERM)
