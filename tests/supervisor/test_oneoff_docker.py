"""`dockyard run` and `dockyard enter` (#20) through the real CLI, a real daemon and Docker:
output and exit codes, the app's env, removal after the end / Ctrl-C / a killed CLI, `ps`
showing a running one-off, and `run -it` through a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.model import defaults
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    free_port,
    mine,
    wait_serving,
    write_config,
)

pytestmark = pytest.mark.docker


def dockyard(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor.cli", "-c", str(config), *args]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI; a hang fails with its Python traceback (faulthandler on SIGABRT)."""
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", *dockyard(config, *args)[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate()
        raise AssertionError(err) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def oneoffs(docker_client: Any, config: Path) -> list[dict[str, Any]]:
    """The run containers, from one list call (no inspect each: one may vanish meanwhile)."""
    filters = mine(config)
    filters["label"] = [*filters["label"], "dockyard.process=run"]
    return list(docker_client.api.containers(all=True, filters=filters))


async def wait_until(predicate: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def daemon(tmp_path: Path, docker_client: Any, app_images: dict[str, str]) -> Any:
    config = write_config(tmp_path, free_port(), app_toml("web", app_images["v1"], 'PLAIN = "toml"'))
    with Daemon(config, docker_client) as d:
        d.start()
        await wait_serving(d.client(), "web", 2)
        yield d


async def test_run_streams_output_exits_with_the_code_and_removes_the_container(
    daemon: Daemon, docker_client: Any
) -> None:
    config = daemon.config
    done = cli(config, "run", "web", "--env", "EXTRA=1", "--", "sh", "-c",
               'echo "out $PLAIN $EXTRA $DYNO"; echo err >&2; exit 7')
    assert done.returncode == 7, done.stderr
    assert done.stdout == "out toml 1 run.1\n" and done.stderr == "err\n"
    assert oneoffs(docker_client, config) == []
    worker = cli(config, "run", "web", "-p", "web", "--", "sh", "-c", "echo $DYNO")
    assert (worker.returncode, worker.stdout) == (0, "web.1\n")

    for args, message in [
        (("run", "nope", "--", "true"), "unknown app 'nope'"),
        (("run", "web", "-p", "nope", "--", "true"), "app 'web' has no process type 'nope'"),
        (("run", "web", "--env", "1X=2", "--", "true"), "bad env var name '1X'"),
        (("enter", "web", "nope", "--", "true"), "app 'web' has no running container 'nope'"),
    ]:
        bad = cli(config, *args)
        assert bad.returncode == 1 and message in bad.stderr, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1
    assert oneoffs(docker_client, config) == []


async def test_interrupted_or_killed_run_is_removed_and_ps_shows_it_meanwhile(
    daemon: Daemon, docker_client: Any
) -> None:
    config = daemon.config
    for how in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(dockyard(config, "run", "web", "--", "sleep", "60"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        await wait_until(lambda: any(c["State"] == "running" for c in oneoffs(docker_client, config)),
                         "the one-off running")
        ps = cli(config, "ps", "web")
        assert any(" run " in f" {line} " and "running" in line for line in ps.stdout.splitlines()), ps.stdout
        (running,) = [c for c in oneoffs(docker_client, config) if c["State"] == "running"]
        host = docker_client.api.inspect_container(running["Id"])["HostConfig"]
        assert host["CpuShares"] == defaults.ONEOFF_CPU_SHARES  # app containers keep Docker's 1024
        proc.send_signal(how)
        code = proc.wait(timeout=20)
        assert code == (130 if how == signal.SIGINT else -signal.SIGKILL)
        await wait_until(lambda: oneoffs(docker_client, config) == [], f"removal after {how!r}")


def _read_until(fd: int, needle: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {needle!r} in {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    assert needle in seen, seen[-500:]
    return seen


async def test_run_it_is_a_real_terminal(daemon: Daemon, docker_client: Any) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: dockyard on the pty's terminal
        os.execv(sys.executable, dockyard(daemon.config, "run", "-it", "web", "--", "sh"))
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        _read_until(fd, b"/ # ")  # the shell's prompt: typing earlier is flushed by raw mode
        os.write(fd, b"echo ready $((6*7))\r")
        _read_until(fd, b"ready 42")
        os.write(fd, b"stty size\r")
        _read_until(fd, b"33 101")
        os.write(fd, b"sleep 30\r")
        await asyncio.sleep(0.5)
        os.write(fd, b"\x03")  # Ctrl-C goes to the command, not to dockyard
        os.write(fd, b"echo still $((1+1))\r")
        _read_until(fd, b"still 2")
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 70, 0, 0))
        await asyncio.sleep(0.3)
        os.write(fd, b"stty size\r")
        _read_until(fd, b"20 70")
        os.write(fd, b"exit 3\r")
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    await wait_until(lambda: oneoffs(docker_client, daemon.config) == [], "removal after -it")


async def test_enter_runs_in_a_running_container(daemon: Daemon, docker_client: Any) -> None:
    config = daemon.config
    done = cli(config, "enter", "web", "--", "cat", "/www/index.html")
    assert done.returncode == 0 and done.stdout.startswith("v1 "), done.stderr
    named = cli(config, "enter", "web", "web.2", "--", "sh", "-c", "echo $DYNO; exit 4")
    assert (named.returncode, named.stdout) == (4, "web.2\n"), named.stderr
