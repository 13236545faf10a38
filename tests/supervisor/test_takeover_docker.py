"""Restarting dockyard itself without a failed request: --takeover, and systemd-style sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from supervisor.config.loader import load_config
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    cleanup,
    free_port,
    kill_workers,
    wait_serving,
    write_config,
)
from tests.utils import Load, get

pytestmark = pytest.mark.docker


class TakeoverDaemon(Daemon):
    def start_takeover(self) -> subprocess.Popen[bytes]:
        """Start a second daemon with --takeover; return it once the old one has exited."""
        old = self.proc
        assert old is not None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "serve", "--takeover", "-c", str(self.config)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        old.wait(timeout=30)
        assert old.returncode == 0
        return self.proc


def worker_pids(config: Path) -> set[int]:
    return {int(p.stem) for p in (load_config(config).server.state_dir / "workers").glob("*.sock")}


async def test_ten_takeovers_under_load_fail_no_request(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    with TakeoverDaemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        ids = {r["id"] for r in daemon.client().get("/v1/ps")}
        pids = {daemon.proc.pid} if daemon.proc else set()
        workers = worker_pids(config)  # the data plane is handed over, not restarted
        async with Load(f"http://127.0.0.1:{port}/", "web.test", rate=200) as load:
            await asyncio.sleep(0.3)
            for _ in range(10):
                proc = await asyncio.to_thread(daemon.start_takeover)
                pids.add(proc.pid)
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.3)
        assert len(pids) == 11
        assert worker_pids(config) == workers and workers
        assert load.failures == [], load.failures[:5]
        assert len(load.results) > 200
        assert all(status == 200 for _, _, status, _ in load.results)
        assert {r["id"] for r in daemon.client().get("/v1/ps")} == ids
        assert daemon.client().get("/v1/status")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
        daemon.signal(signal.SIGTERM)


async def test_takeover_with_a_broken_config_is_refused_and_old_keeps_serving(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        broken = tmp_path / "broken.toml"
        broken.write_text(config.read_text().replace("scale = 2", "scale = 'two'"))
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "serve", "--takeover", "-c", str(broken)],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 1
        assert "apps.web.processes.web.scale" in result.stderr
        assert "Traceback" not in result.stderr
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert (await get(f"http://127.0.0.1:{port}/", "web.test"))[0] == 200
        daemon.signal(signal.SIGTERM)


async def test_systemd_socket_activation_keeps_connections_in_the_backlog(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    """The listener is bound by the parent (as systemd does) and passed as fd 3 with
    LISTEN_FDS/LISTEN_PID; between two daemons the kernel queues connections instead of
    refusing them."""
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    log = open(tmp_path / "daemon.log", "ab")

    def spawn() -> subprocess.Popen[bytes]:
        fd = listener.fileno()

        def as_fd_3() -> None:
            os.dup2(fd, 3)
            os.set_inheritable(3, True)

        cmd = (f'LISTEN_PID=$$ LISTEN_FDS=1 exec {sys.executable} -m supervisor.cli serve '
               f'-c {config}')
        return subprocess.Popen(["sh", "-c", cmd], stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=as_fd_3, close_fds=False)

    proc = spawn()
    client = Daemon(config).client()
    try:
        await wait_serving(client, "web", 2)
        ids = {r["id"] for r in client.get("/v1/ps")}
        async with Load(f"http://127.0.0.1:{port}/", "web.test", rate=100) as load:
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)  # what `systemctl restart` does...
            proc.wait(timeout=20)
            proc = spawn()  # ...and systemd starts the new one on the same socket
            await wait_serving(client, "web", 2)
            await asyncio.sleep(0.5)
        assert {r["id"] for r in client.get("/v1/ps")} == ids
        # Requests sent while no daemon ran waited in the backlog instead of being refused.
        refused = [e for _, e in load.errors if "onnect" in e]
        assert refused == [], refused[:3]
        assert load.results and all(status == 200 for _, _, status, _ in load.results)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_workers(config)
        listener.close()
        cleanup(docker_client, config)
