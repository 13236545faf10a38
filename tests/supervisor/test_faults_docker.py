"""Issue #18 item 14: fault scenarios against real Docker and real faults, nothing lost.

- disk full during a deploy (the state dir on a tiny tmpfs, filled at the checks);
- dockerd unreachable when `serve` starts, and under load (a relay the test cuts: the shared
  engine never stops, see tests/relay.py);
- the daemon killed -9 right after the swap (DOCKYARD_TEST_KILL_AT, supervisor/ops/faults.py);
- the daemon killed -9 mid-build: its build directory is removed at the next start.

A real dockerd restart is in test_dockerd_restart.py (its own marker, run last by `make test`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy import Proxy
from supervisor.cli.client import ControlClient
from supervisor.config.loader import load_config
from supervisor.deploy.supervisor import Supervisor
from supervisor.store.releases import StateStore
from tests.relay import DockerRelay
from tests.supervisor.test_deploy_docker import HOST, app_def
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    free_port,
    mine,
    wait_serving,
    write_config,
)
from tests.utils import LabellingRuntime, Load, get, make_config, stack

pytestmark = pytest.mark.docker


# disk full ------------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros into `directory` until its file system is full; return the filler."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512):  # big blocks, then the last partial ones
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


async def test_disk_full_during_a_deploy_fails_it_and_the_old_release_serves_after_restart(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    with tiny_tmpfs(tmp_path / "state") as state_dir:
        config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
        assert config.server.state_dir == state_dir
        async with stack(config, docker_client) as s:
            assert (await s.sup.deploy("web")).ok
            v1 = {c.id for c in s.sup.serving["web"].containers}
            db = state_dir / "dockyard.db"
            filled: list[Path] = []

            def at_checks(event: dict[str, Any]) -> None:
                if event.get("step") == "checks" and event.get("status") == "start":
                    # The WAL emptied first (it would otherwise take the commit in pages it
                    # holds already): the next write needs blocks the disk no longer has.
                    side = sqlite3.connect(db)
                    side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    side.close()
                    filled.append(fill(state_dir))

            async with Load(s.base + "/", HOST, rate=100) as load:
                report = await s.sup.deploy("web", app_images["v2"], progress=at_checks)
                await asyncio.sleep(0.3)
            assert filled, "the deploy never reached its checks"
            assert not report.ok
            assert "database or disk is full" in report.reason, report.reason
            assert report.reason.startswith("could not record the release, nothing changed")
            assert load.failures == [], load.failures[:3]
            assert {b.split()[0] for _, _, _, b in load.results} == {"v1"}
            assert {c.id for c in s.sup.serving["web"].containers} == v1
            ours = {"label": f"dockyard.instance={config.server.instance}"}
            names = [c.name for c in docker_client.containers.list(all=True, filters=ours)]
            assert not any(n.endswith(".r2") for n in names), names
            filled[0].unlink()  # space again, then the daemon restarts
            await s.sup.retirer.close()

            state = StateStore(state_dir)
            proxy = Proxy(config.proxy)
            await proxy.start("127.0.0.1", 0)
            again = Supervisor(config, LabellingRuntime(docker_client), proxy, state)
            try:
                await again.adopt()
                assert again.serving["web"].release == 1
                assert {c.id for c in again.serving["web"].containers} == v1
                status, body = await get(f"http://127.0.0.1:{proxy.port}/", HOST)
                assert status == 200 and body.startswith("v1 ")
                rel = state.release("web", 2)
                assert rel is not None and rel.status == "failed"
            finally:
                await again.retirer.close()
                await proxy.stop(0.5)
                state.close()


# Docker unreachable ------------------------------------------------------------------------------


class RelayedDaemon(Daemon):
    """`dockyard serve` talking to Docker through a relay (and any extra environment)."""

    def __init__(self, config: Path, docker_client: Any, relay: DockerRelay,
                 **env: str) -> None:
        super().__init__(config, docker_client)
        self.env = {**os.environ, "DOCKER_HOST": relay.docker_host, **env}

    def __enter__(self) -> RelayedDaemon:
        return self

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "serve", "-c", str(self.config)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=self.env,
        )
        client = self.client()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                client.get("/v1/status")
                return
            except Exception:
                time.sleep(0.05)
        raise AssertionError(f"daemon did not start: {self.log.read_text()[-2000:]}")


async def docker_status(client: ControlClient) -> dict[str, Any]:
    status = await asyncio.to_thread(client.get, "/v1/status")
    return dict(status["docker"])


async def wait_docker(client: ControlClient, reachable: bool, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docker = await docker_status(client)
        if docker["reachable"] is reachable:
            return docker
        await asyncio.sleep(0.2)
    raise AssertionError(f"status never said docker reachable={reachable}")


def status_text(config: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "supervisor.cli", "status", "-c", str(config)],
                          capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


@contextlib.contextmanager
def relayed(tmp_path: Path, docker_client: Any, image: str, *,
            on: bool = True) -> Iterator[tuple[RelayedDaemon, DockerRelay, int, Path]]:
    """`dockyard serve` (started) serving `web` on `image` and talking to Docker through a relay,
    on (or off: Docker unreachable from the start); the relay is cut at the end, however it ends.
    Yields the daemon, the relay, the proxy's port and the config."""
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", image))
    relay = DockerRelay(Path(f"/tmp/dockyard-relay-{os.getpid()}-{port}.sock"))
    if on:
        relay.on()
    with RelayedDaemon(config, docker_client, relay) as daemon:
        try:
            daemon.start()
            yield daemon, relay, port, config
        finally:
            relay.off()


async def test_serve_starts_without_docker_says_so_and_adopts_when_it_answers(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    with relayed(tmp_path, docker_client, app_images["v1"], on=False) as (daemon, relay, port, config):
        client = daemon.client()  # relay off: Docker unreachable
        docker = await docker_status(client)
        assert docker["reachable"] is False and docker["error"], docker
        assert "docker: unreachable" in status_text(config)
        status, _ = await get(f"http://127.0.0.1:{port}/", "web.test")
        assert status in (404, 503)  # serving, nothing adopted yet
        relay.on()
        await wait_docker(client, True)
        await wait_serving(client, "web", 2, timeout=60)
        status, body = await get(f"http://127.0.0.1:{port}/", "web.test")
        assert status == 200 and body.startswith("v1 ")
        assert "docker: unreachable" not in status_text(config)
        daemon.signal(signal.SIGTERM)


async def test_docker_unreachable_under_load_routes_keep_serving_and_it_readopts(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    with relayed(tmp_path, docker_client, app_images["v1"]) as (daemon, relay, port, config):
        client = daemon.client()
        targets = await wait_serving(client, "web", 2, timeout=60)
        base = f"http://127.0.0.1:{port}/"
        async with Load(base, "web.test", rate=100) as load:
            await asyncio.sleep(0.5)
            relay.off()
            down = await wait_docker(client, False)
            assert down["outages"] == 1
            await asyncio.sleep(3)  # serving throughout, Docker away
            relay.on()
            await wait_docker(client, True)
            await asyncio.sleep(1)
        assert load.failures == [], load.failures[:3]
        assert len(load.results) > 300
        assert sorted(await wait_serving(client, "web", 2)) == sorted(targets)
        # After the outage the daemon works with Docker again: a deploy goes through.
        done = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "supervisor.cli", "deploy", "web", "--image", app_images["v2"],
            "-c", str(config)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        await wait_serving(client, "web", 2)
        status, body = await get(base, "web.test")
        assert status == 200 and body.startswith("v2 ")
        daemon.signal(signal.SIGTERM)


# kill -9 after the swap ----------------------------------------------------------------------------


def direct_daemon(tmp_path: Path, docker_client: Any, image: str) -> RelayedDaemon:
    """`dockyard serve` on the engine itself (no relay), serving `web` on `image`."""
    config = write_config(tmp_path, free_port(), app_toml("web", image))
    relay = DockerRelay(Path(f"/tmp/dockyard-relay-{os.getpid()}-{tmp_path.name}.sock"))  # unused: off
    return RelayedDaemon(config, docker_client, relay, DOCKER_HOST=os.environ.get(
        "DOCKER_HOST", "unix:///var/run/docker.sock"))


def names_of(docker_client: Any, config: Path) -> list[str]:
    """The app's container names, from one list call (no inspect of each: a container Docker
    is still removing could vanish between the two and fail the listing)."""
    return [c["Names"][0].lstrip("/") for c in docker_client.api.containers(all=True, filters=mine(config))]


async def kill_during(daemon: RelayedDaemon, point: str, *command: str) -> None:
    """Start the daemon with DOCKYARD_TEST_KILL_AT=`point`, run `dockyard *command` against it,
    and see the daemon SIGKILL itself there; the hook is unset for the next start."""
    daemon.env["DOCKYARD_TEST_KILL_AT"] = point
    daemon.start()
    await wait_serving(daemon.client(), "web", 2)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "supervisor.cli", *command, "-c", str(daemon.config)],
        capture_output=True, text=True, timeout=120,
    )
    assert daemon.proc is not None
    assert daemon.proc.wait(timeout=30) == -signal.SIGKILL, done.stdout + done.stderr
    assert "killing the daemon" in daemon.log.read_text()
    daemon.env.pop("DOCKYARD_TEST_KILL_AT")


async def test_kill_9_right_after_the_swap_serves_one_release_after_restart_without_orphans(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    with direct_daemon(tmp_path, docker_client, app_images["v1"]) as daemon:
        config = daemon.config
        daemon.start()  # v1 deployed at start, then the daemon restarted with the hook set
        await wait_serving(daemon.client(), "web", 2)
        daemon.signal(signal.SIGTERM)
        await kill_during(daemon, "after-swap", "deploy", "web", "--image", app_images["v2"])
        names = set(names_of(docker_client, config))
        assert any(n.endswith(".r1") for n in names) and any(n.endswith(".r2") for n in names)

        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        releases = daemon.client().get("/v1/apps/web/releases")
        assert [(r["number"], r["status"]) for r in releases] == [(2, "active"), (1, "superseded")]
        deadline = time.monotonic() + 30  # the old containers' retire timers resume
        while time.monotonic() < deadline:
            if all(n.endswith(".r2") for n in names_of(docker_client, config)):
                break
            await asyncio.sleep(0.2)
        left = names_of(docker_client, config)
        assert sorted(n.rsplit(".", 1)[1] for n in left) == ["r2", "r2"], left
        status, body = await get(f"http://{load_config(config).server.listen}/", "web.test")
        assert status == 200 and body.startswith("v2 ")
        daemon.signal(signal.SIGTERM)


# kill -9 mid-build ---------------------------------------------------------------------------------


async def test_kill_9_mid_build_leaves_no_build_directory_after_restart(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "Dockerfile").write_text(f"FROM {app_images['v1']}\n")
    builds = tmp_path / "state" / "builds"
    with direct_daemon(tmp_path, docker_client, app_images["v1"]) as daemon:
        # v1 is deployed at start (no build, no kill); the build is killed with its context on disk
        await kill_during(daemon, "mid-build", "deploy", "web", "--build", str(work))
        left = [p.name for p in builds.iterdir() if p.name.startswith("ctx-")]
        assert len(left) == 1, left  # the killed build's context, as a SIGKILL leaves it

        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        assert [p.name for p in builds.iterdir() if p.name.startswith("ctx-")] == []
        assert "removed stale build directories count=1" in daemon.log.read_text()
        daemon.signal(signal.SIGTERM)


# retention on the real engine (issue #18 item 13) ---------------------------------------------


async def test_old_release_images_are_pruned_but_never_one_a_container_uses(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    repo = f"dockyard-test-prune-{os.getpid()}"
    base = docker_client.images.get(app_images["v1"])
    for n in range(1, 5):
        base.tag(repo, str(n))
    config = make_config(tmp_path, {"web": app_def(f"{repo}:4", keep_releases=1,
                                                   processes={"web": {"scale": 1}})})
    outsider = docker_client.containers.create(f"{repo}:1", labels={"dockyard.test": str(os.getpid())})
    try:
        async with stack(config, docker_client) as s:
            for n in range(1, 5):
                assert (await s.sup.deploy("web", f"{repo}:{n}")).ok
                await s.sup.retirer.wait_idle()
            tags = {t for image in docker_client.images.list(name=repo) for t in image.tags
                    if t.startswith(repo)}
            # 4 serves, 3 is the rollback target, 2 went, 1 stays: a container not made by
            # dockyard was created from it
            assert tags == {f"{repo}:1", f"{repo}:3", f"{repo}:4"}, tags
            assert [r.number for r in s.state.releases("web")] == [4, 3]
    finally:
        outsider.remove(force=True)
        for n in range(1, 5):
            with contextlib.suppress(Exception):
                docker_client.images.remove(f"{repo}:{n}")


async def test_containers_stopped_while_docker_was_unreachable_are_restarted_when_it_answers(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    """What a dockerd restart does to the containers (they stop), without restarting the shared
    engine: the relay is cut, the containers are stopped behind the daemon's back (it sees no
    event), then Docker answers again and the daemon restarts them on new ports."""
    with relayed(tmp_path, docker_client, app_images["v1"]) as (daemon, relay, port, config):
        client = daemon.client()
        before = await wait_serving(client, "web", 2, timeout=60)
        relay.off()
        await wait_docker(client, False)
        for c in docker_client.containers.list(filters=mine(config)):
            c.stop(timeout=1)
        relay.on()
        await wait_docker(client, True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = await wait_serving(client, "web", 2)
            if not set(after) & set(before):
                break
            await asyncio.sleep(0.2)
        assert not set(after) & set(before), (before, after)  # restarted: new ports
        status, body = await get(f"http://127.0.0.1:{port}/", "web.test")
        assert status == 200 and body.startswith("v1 ")
        assert len(docker_client.containers.list(filters=mine(config))) == 2
        assert "restarted after the outage" in daemon.log.read_text()
        daemon.signal(signal.SIGTERM)
