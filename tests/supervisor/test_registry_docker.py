"""Images from a registry (#20) on real Docker and a real registry (Debian's docker-registry,
htpasswd auth): pulled when missing with a `pull` step in the deploy stream, `[registries]`
credentials read at each pull, and a failed pull (wrong password, unreachable registry) a failed
deploy that names the registry's error while the old release serves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.registry import PASSWORD, USER, Registry, start_registry
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    free_port,
    wait_serving,
    write_config,
)
from tests.supervisor.test_operations_docker import cli

pytestmark = pytest.mark.docker


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Registry]:
    yield from start_registry(tmp_path_factory.mktemp("registry"), docker_client)


def login(tmp_path: Path, host: str, password: str = PASSWORD, mode: int = 0o600) -> str:
    secret = tmp_path / "registry.password"
    secret.write_text(password + "\n")
    os.chmod(secret, mode)
    return f'\n[registries."{host}"]\nusername = "{USER}"\npassword_file = "registry.password"\n'


async def test_deploy_pulls_from_a_registry_with_credentials_and_fails_cleanly(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], registry: Registry
) -> None:
    v1 = registry.push(app_images["v1"], "team/app:1")
    v2 = registry.push(app_images["v2"], "team/app:2")
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", v1) + login(tmp_path, registry.host))
    with Daemon(config, docker_client) as daemon:
        daemon.start()  # the first deploy pulls v1 itself
        await wait_serving(daemon.client(), "web", 2)
        first = daemon.client().get("/v1/apps/web/releases")[0]
        assert [s["step"] for s in first["steps"]][:1] == ["pull"]

        done = cli(config, "deploy", "web", "--image", v2)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "       pull ..." in done.stdout and "pull done in" in done.stdout
        assert "Pulling from team/app" in done.stdout

        (tmp_path / "registry.password").write_text("wrong\n")  # read at each pull
        denied = cli(config, "deploy", "web", "--image", f"{registry.host}/team/app:3")
        assert denied.returncode == 1
        assert f"pulling it from {registry.host} failed" in denied.stdout
        assert "unauthorized" in denied.stdout or "authentication required" in denied.stdout

        dead = f"127.0.0.1:{free_port()}"
        gone = cli(config, "deploy", "web", "--image", f"{dead}/team/app:1")
        assert gone.returncode == 1 and f"pulling it from {dead} failed" in gone.stdout
        assert "connection refused" in gone.stdout.lower(), gone.stdout

        releases = daemon.client().get("/v1/apps/web/releases")
        assert [r["status"] for r in releases] == ["failed", "failed", "active", "superseded"]
        assert releases[2]["image"] == v2


async def test_pull_always_pulls_even_when_present(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], registry: Registry
) -> None:
    v1 = registry.push(app_images["v1"], "team/always:1")
    port = free_port()
    toml = app_toml("web", v1).replace("retire_after", 'pull = "always"\nretire_after')
    config = write_config(tmp_path, port, toml + login(tmp_path, registry.host))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        restart = cli(config, "restart", "web")
        assert restart.returncode == 0 and "pull done in" in restart.stdout, restart.stdout

