"""A proxy worker process (proxy/worker.py) driven over its control socket, as the supervisor does."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from proxy import route_message
from proxy.channel import encode, read_message
from proxy.routes import make_service

from .utils import backend


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.ids = reader, writer, 0

    async def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        self.ids += 1
        self.writer.write(encode({"op": op, "id": self.ids, **fields}))
        while True:
            message = await asyncio.wait_for(read_message(self.reader), 10)
            assert message is not None
            if message.get("id") == self.ids:
                return message


@asynccontextmanager
async def worker(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, Channel, int]]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.worker", "--control-dir", str(tmp_path), "--listen-fd", str(listener.fileno()),
        "--options", '{"upstream_connect_timeout": 0.5}', pass_fds=[listener.fileno()],
    )
    listener.close()  # the worker holds it now
    path = tmp_path / f"{proc.pid}.sock"
    deadline = time.monotonic() + 10
    writer = None
    try:
        while True:  # the file appears at bind(), connections are taken from listen() on
            try:
                reader, writer = await asyncio.open_unix_connection(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline and proc.returncode is None
                await asyncio.sleep(0.01)
        yield proc, Channel(reader, writer), port
    finally:
        if writer is not None:
            writer.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def table(seq: int, target: str) -> dict[str, Any]:
    return {"seq": seq, "apps": [route_message.entry(make_service("a", ["h"], [target]))]}


async def get(port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}/", headers={"Host": "h"}
    ) as resp:
        return resp.status, await resp.text()


def named(name: str) -> list[tuple[str, str, Any]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=name)

    return [("GET", "/", handler)]


async def test_worker_serves_after_its_first_table_and_acks_each(tmp_path: Path) -> None:
    async with backend(named("one")) as one, backend(named("two")) as two, worker(tmp_path) as (proc, ch, port):
        status = await ch.ask("attach")
        assert status["pid"] == proc.pid and status["serving"] is False
        assert oct(os.stat(tmp_path / f"{proc.pid}.sock").st_mode & 0o777) == "0o600"
        assert (await ch.ask("table", **table(1, one)))["ack"] == 1
        assert await get(port) == (200, "one")
        assert (await ch.ask("table", **table(2, two)))["ack"] == 2
        assert await get(port) == (200, "two")
        answer = await ch.ask("stats")
        assert answer["stats"]["a"]["requests"] == 2 and answer["inflight"] == {}
        assert (await ch.ask("hello"))["attached"] is True
        assert (await ch.ask("table", seq=3, apps=[]))["ack"] == 3
        assert (await get(port))[0] == 404
        assert (await ch.ask("stop", timeout=0.5))["ok"] is True
        assert await asyncio.wait_for(proc.wait(), 5) == 0
        assert not (tmp_path / f"{proc.pid}.sock").exists()


async def test_worker_keeps_serving_when_its_supervisor_goes(tmp_path: Path) -> None:
    async with backend(named("one")) as one, worker(tmp_path) as (proc, ch, port):
        await ch.ask("attach")
        await ch.ask("table", **table(1, one))
        ch.writer.close()  # the supervisor is gone
        await asyncio.sleep(0.1)
        assert [await get(port) for _ in range(5)] == [(200, "one")] * 5
        assert proc.returncode is None
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / f"{proc.pid}.sock"))
        again = Channel(reader, writer)
        status = await again.ask("hello")
        assert status["attached"] is False and status["serving"] is True and status["seq"] == 1
        writer.close()


async def test_worker_drains_and_cancels_at_the_timeout(tmp_path: Path) -> None:
    async def stuck(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async with backend([("GET", "/", stuck)]) as slow, worker(tmp_path) as (proc, ch, port):
        await ch.ask("attach")
        await ch.ask("table", **table(1, slow))
        pending = asyncio.ensure_future(asyncio.gather(*(get(port) for _ in range(3))))
        await asyncio.sleep(0.3)
        assert (await ch.ask("stats"))["inflight"] == {slow: 3}
        assert (await ch.ask("drain", targets=[slow], timeout=0.1))["cancelled"] == 3
        assert [s for s, _ in await pending] == [504] * 3
