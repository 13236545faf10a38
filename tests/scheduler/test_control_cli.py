"""The control routes and `dockyard cron`, end to end: CLI -> unix socket -> Scheduler -> Docker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from scheduler import Scheduler
from supervisor.api.cron import add_routes
from supervisor.cli.client import ControlClient
from supervisor.cli.cron import add_commands
from supervisor.model.spec import CronSpec
from supervisor.runtime.docker import DockerRuntime

from .utils import EXTRA_LABELS, Releases, make_config

pytestmark = pytest.mark.docker

TASKS = (
    CronSpec("hello", "echo hello $APP_VERSION; echo bye", "@daily"),
    CronSpec("fail", "echo failing; exit 7", "*/5 * * * *"),
)


@pytest.fixture
async def daemon(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> AsyncIterator[tuple[Scheduler, Path]]:
    sched = Scheduler(
        make_config(tmp_path, *TASKS), DockerRuntime(docker_client), Releases(app_images["v2"]),
        extra_labels=EXTRA_LABELS,
    )
    await sched.start()
    app = web.Application()
    add_routes(app, lambda: sched)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = tmp_path / "control.sock"
    await web.UnixSite(runner, str(sock)).start()
    yield sched, sock
    await runner.cleanup()
    await sched.stop()
    sched.close()


async def cli(sock: Path, *argv: str) -> tuple[int, str, str]:
    """Run `dockyard cron ...` in a thread (the client is blocking), capturing its output."""

    def call() -> tuple[int, str, str]:
        common = argparse.ArgumentParser(add_help=False)
        parser = argparse.ArgumentParser(prog="dockyard", parents=[common])
        sub = parser.add_subparsers(dest="command")
        add_commands(sub, common, lambda _args: ControlClient(sock))
        args = parser.parse_args(argv)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = args.func(args)
        return code, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(call)


async def test_list(daemon: tuple[Scheduler, Path]) -> None:
    _sched, sock = daemon
    code, out, _ = await cli(sock, "cron", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["APP", "ID", "SCHEDULE", "NEXT_RUN", "LAST"]
    assert rows[0].split()[:3] == ["hello", "fail", "*/5"]
    assert rows[1].split()[:3] == ["hello", "hello", "@daily"]
    code, out, _ = await cli(sock, "cron", "list", "hello", "--json")
    data = orjson.loads(out)
    assert {row["id"] for row in data} == {"hello", "fail"}
    assert all(row["next_run"] and row["last"] is None for row in data)


async def test_run_streams_and_exits_with_the_task_code(daemon: tuple[Scheduler, Path]) -> None:
    sched, sock = daemon
    code, out, err = await cli(sock, "cron", "run", "hello", "hello")
    assert (code, out) == (0, "hello v2\nbye\n")
    code, out, err = await cli(sock, "cron", "run", "hello", "fail")
    assert code == 7 and out == "failing\n" and "failed (exit code 7)" in err
    [last] = [r for r in sched.list("hello") if r["id"] == "fail"]
    assert last["last"]["status"] == "failed" and last["last"]["exit_code"] == 7
    code, out, _ = await cli(sock, "cron", "runs", "hello", "fail", "--json")
    [run] = orjson.loads(out)
    assert run["manual"] and run["exit_code"] == 7 and run["image"].endswith(":v2")


async def test_suspend_and_resume(daemon: tuple[Scheduler, Path]) -> None:
    sched, sock = daemon
    assert (await cli(sock, "cron", "suspend", "hello", "fail"))[0] == 0
    code, out, _ = await cli(sock, "cron", "list", "hello")
    assert "suspended" in out
    assert [r["suspended"] for r in sched.list() if r["id"] == "fail"] == [True]
    assert (await cli(sock, "cron", "resume", "hello", "fail"))[0] == 0
    assert [r["suspended"] for r in sched.list() if r["id"] == "fail"] == [False]


async def test_unknown_app_or_task_is_a_404(daemon: tuple[Scheduler, Path]) -> None:
    from supervisor.model.errors import ControlError

    _sched, sock = daemon
    for argv in (("cron", "run", "nope", "hello"), ("cron", "suspend", "hello", "nope"),
                 ("cron", "list", "nope")):
        with pytest.raises(ControlError, match="unknown app|no cron task"):
            await cli(sock, *argv)
    status, body = await _raw(sock, "POST", "/v1/apps/hello/cron/zz/run")
    assert status == 404 and "no cron task 'zz'" in orjson.loads(body)["error"]


async def _raw(sock: Path, method: str, path: str) -> tuple[int, bytes]:
    """The daemon's answer as it is, without the CLI's client (which raises on a 404)."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as session:
        async with session.request(method, f"http://localhost{path}", json={}) as resp:
            return resp.status, await resp.read()
