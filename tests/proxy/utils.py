"""Helpers for proxy tests: real aiohttp backends and a started Proxy, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from proxy import Proxy, ProxyOptions

Handler = Callable[[web.Request], Any]

# The grace a test's proxy gets when the test is over: its assertions have run, so nothing is in
# flight that matters; Proxy.stop lingers half of it for idle keep-alive connections.
TEARDOWN_GRACE = 0.1

# Body, send, tunnel and per-app timeouts fire at the proxy's deadline sweep, which runs every
# tenth of the shortest header/idle/response timeout (proxy/deadlines.py): 0.5 s with the
# defaults here. A test of a 0.2 s timeout passes FINE_SWEEP to see it fire near 0.2 s; its
# header timeout (1 s) never matters to such a test, whose request head goes out in one write.
FINE_SWEEP = {"client_header_timeout": 1.0}


@asynccontextmanager
async def backend(routes: list[tuple[str, str, Handler]] | None = None, name: str = "b") -> AsyncIterator[str]:
    """Start an aiohttp app; yields its "127.0.0.1:PORT" target. Default route echoes facts as JSON."""

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": name,
                "method": request.method,
                "path": request.path_qs,
                "headers": [[k, v] for k, v in request.headers.items()],
            }
        )

    app = web.Application(client_max_size=0)
    for method, path, handler in routes or []:
        app.router.add_route(method, path, handler)
    app.router.add_route("*", "/{tail:.*}", info)
    # Teardown cancels handlers still running after 0.1 s (aiohttp waits 60 s by default): a test's
    # stuck or slow handler must not hold the suite once its assertions have run.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_proxy(**options: Any) -> AsyncIterator[Proxy]:
    opts = {"upstream_connect_timeout": 0.5, "upstream_response_timeout": 5.0}
    opts.update(options)
    proxy = Proxy(ProxyOptions(**opts))
    await proxy.start("127.0.0.1", 0)
    try:
        yield proxy
    finally:
        await proxy.stop(TEARDOWN_GRACE)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the proxy closes the connection (or timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        writer.close()
    return b"".join(chunks)


@asynccontextmanager
async def raw_backend(respond: Callable[[bytes], bytes | None]) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A raw TCP backend: reads one request head, writes respond(head) (None: reset), closes.

    Yields (target, heads seen).
    """
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        seen.append(head)
        answer = respond(head)
        if answer is None:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()
            return
        writer.write(answer)
        try:
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        server.close()


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split one raw HTTP/1.1 response into (status, lower-cased headers, rest)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def rss_mib() -> float:
    """Resident memory of this process (the proxy runs in it) in MiB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until predicate() holds; TimeoutError otherwise."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@asynccontextmanager
async def silent_backend() -> AsyncIterator[tuple[str, list[bytes], list[asyncio.StreamWriter]]]:
    """A raw backend that reads request heads and never answers. Yields (target, heads, writers)."""
    heads: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            while await reader.read(65536):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # torn down with the test's loop: end quietly
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", heads, writers
    finally:
        for w in writers:
            w.close()
        server.close()
