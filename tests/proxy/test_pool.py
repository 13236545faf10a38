"""Admission of new upstream connections (proxy/upstream.py UpstreamPool): a target that has not
answered yet gets at most `max_opening` connections; more requests wait for one of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from proxy import Proxy

from .utils import running_proxy

HOST = "pool.test"


@dataclass
class HeldBackend:
    """A keep-alive HTTP/1.1 backend that answers nothing until `gate` opens."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    close: bool = False  # answer with Connection: close, as busybox httpd does
    connections: int = 0
    heads: int = 0
    target: str = ""


@asynccontextmanager
async def held_backend(close: bool = False) -> AsyncIterator[HeldBackend]:
    b = HeldBackend(close=close)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                b.heads += 1
                await b.gate.wait()
                close = b"Connection: close\r\n" if b.close else b""
                writer.write(b"HTTP/1.1 200 OK\r\n" + close + b"Content-Length: 2\r\n\r\nok")
                await writer.drain()
                if b.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    b.target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield b
    finally:
        server.close()


def route(proxy: Proxy, target: str) -> None:
    proxy.set_app("a", [HOST], [target])


async def until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def get(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": HOST}) as resp:
        await resp.read()
        return resp.status


@dataclass
class Scene:
    """A proxy routing HOST to a held backend, and a client session without a connection limit."""

    b: HeldBackend
    proxy: Proxy
    session: aiohttp.ClientSession
    limit: int  # the pool's max_opening

    def send(self, n: int) -> list[asyncio.Task[int]]:
        return [asyncio.create_task(get(self.session, self.proxy.port)) for _ in range(n)]


@asynccontextmanager
async def scene(grace: float, close: bool = False, **options: Any) -> AsyncIterator[Scene]:
    async with held_backend(close) as b, running_proxy(**options) as proxy:
        proxy.pool.opening_grace = grace
        route(proxy, b.target)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            yield Scene(b, proxy, session, proxy.pool.max_opening)


async def test_a_target_that_has_not_answered_gets_at_most_max_opening_connections() -> None:
    async with scene(60.0) as sc:  # no long-poll allowance in this test
        b, proxy, limit = sc.b, sc.proxy, sc.limit
        requests = sc.send(5 * limit)
        await until(lambda: b.heads == limit and proxy.pool.waiting(b.target) == 4 * limit)
        await asyncio.sleep(0.3)  # nothing else may reach the backend meanwhile
        assert (b.connections, b.heads) == (limit, limit)
        b.gate.set()
        assert await asyncio.gather(*requests) == [200] * (5 * limit)
        assert proxy.pool.waiting(b.target) == 0


async def test_every_first_answer_raises_the_allowance_by_one() -> None:
    """Slow start: a target that answers (here one that closes every connection, as busybox
    httpd does) may soon have many connections opening at once."""
    async with scene(60.0, close=True) as sc:
        b, proxy, limit = sc.b, sc.proxy, sc.limit
        first = sc.send(limit)
        await until(lambda: b.heads == limit)
        b.gate.set()
        assert await asyncio.gather(*first) == [200] * limit
        assert proxy.pool.allowance(b.target) == 2 * limit
        b.gate.clear()
        second = sc.send(3 * limit)
        await until(lambda: b.heads == 3 * limit and proxy.pool.waiting(b.target) == limit)
        await asyncio.sleep(0.3)
        assert b.heads == 3 * limit
        b.gate.set()
        assert await asyncio.gather(*second) == [200] * (3 * limit)
        assert b.connections == 4 * limit


async def test_a_connection_that_outgrows_the_grace_frees_its_slot() -> None:
    """A long poll holds its connection; after the grace it no longer blocks new connections."""
    async with scene(0.05) as sc:
        b, limit = sc.b, sc.limit
        requests = sc.send(3 * limit)
        await until(lambda: b.heads == 3 * limit)
        assert b.connections == 3 * limit
        b.gate.set()
        assert await asyncio.gather(*requests) == [200] * (3 * limit)


async def test_a_waiter_whose_client_leaves_gives_up_its_turn() -> None:
    async with scene(60.0) as sc:
        b, proxy, limit = sc.b, sc.proxy, sc.limit
        held = sc.send(limit)
        await until(lambda: b.heads == limit)
        leaver = sc.send(1)[0]
        await until(lambda: proxy.pool.waiting(b.target) == 1)
        leaver.cancel()  # the client closes its connection while its request waits
        await until(lambda: proxy.pool.waiting(b.target) == 0)
        stayer = sc.send(1)[0]
        await until(lambda: proxy.pool.waiting(b.target) == 1)
        b.gate.set()
        assert await asyncio.gather(*held, stayer) == [200] * (limit + 1)
        assert b.heads == limit + 1  # the leaver's request never reached the backend


async def open_idle(proxy: Proxy, target: str, n: int) -> None:
    conns = [await proxy.pool.connect(target) for _ in range(n)]
    for conn in conns:
        proxy.pool.opened(conn, answered=True)  # as if each had answered once
        proxy.pool.put(conn)


async def test_warm_gives_new_targets_as_many_connections_as_the_old_ones_hold() -> None:
    async with held_backend() as old, held_backend() as new, running_proxy() as proxy:
        await open_idle(proxy, old.target, 11)
        assert await proxy.warm([new.target], [old.target]) == 11
        await until(lambda: new.connections == 11)
        assert proxy.pool.idle_count(new.target) == 11
        assert new.heads == 0  # connections only: the app sees no request
        assert await proxy.warm([new.target], [old.target]) == 0  # already warm


async def test_warm_is_capped_and_split_across_targets() -> None:
    from proxy.upstream import WARM_MAX

    async with held_backend() as old, held_backend() as a, held_backend() as b, running_proxy() as proxy:
        await open_idle(proxy, old.target, 2 * WARM_MAX + 6)
        assert await proxy.warm([a.target], [old.target]) == WARM_MAX
        assert await proxy.warm([b.target], []) == 0  # nothing to match: a first deploy
        proxy.pool.close_target(a.target)
        await proxy.warm([a.target, b.target], [old.target])
        assert proxy.pool.idle_count(a.target) == proxy.pool.idle_count(b.target) == WARM_MAX


async def test_warm_against_a_refusing_target_gives_up_quietly() -> None:
    from .utils import free_port

    async with held_backend() as old, running_proxy() as proxy:
        await open_idle(proxy, old.target, 4)
        assert await proxy.warm([f"127.0.0.1:{free_port()}"], [old.target]) == 0


async def test_a_connection_handed_over_closed_is_not_used() -> None:
    from proxy.upstream import UpstreamPool

    async with held_backend() as b:
        pool = UpstreamPool(1.0, 4.0, max_opening=1)
        first = await pool.connect(b.target)  # holds the only slot
        waiter = asyncio.create_task(pool.acquire(b.target))
        await until(lambda: pool.waiting(b.target) == 1)
        pool.put(first)  # handed to the waiter ...
        first.close()  # ... and closed before the waiter runs
        conn = await asyncio.wait_for(waiter, 5)
        assert conn is not first and not conn.closed
        await until(lambda: b.connections == 2)
        pool.close()


async def test_a_request_waits_at_most_the_connect_timeout_for_a_connection() -> None:
    async with scene(60.0, upstream_connect_timeout=0.15) as sc:
        b, proxy, limit = sc.b, sc.proxy, sc.limit
        held = sc.send(limit)
        await until(lambda: b.heads == limit)
        assert await get(sc.session, proxy.port) == 502  # waited (and was retried once), no slot
        assert proxy.pool.waiting(b.target) == 0
        b.gate.set()
        assert await asyncio.gather(*held) == [200] * limit
        assert b.heads == limit
