"""Connection limits (issue #17 item 4): max_connections, max_connections_per_ip, RLIMIT_NOFILE."""

from __future__ import annotations

import asyncio
import resource

from proxy.options import FD_RESERVE

from .utils import backend, running_proxy, silent_backend, until

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(3):
            await reader.read()  # what is left of an answer, then EOF
            return reader.at_eof()
    except ConnectionError:
        return True


async def answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(GET)
    try:
        async with asyncio.timeout(3):
            return (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    except (ConnectionError, asyncio.IncompleteReadError):
        return False


async def test_at_max_connections_the_oldest_idle_keepalive_connection_makes_room() -> None:
    async with backend() as target, running_proxy(max_connections=4) as proxy:
        proxy.set_app("a", ["h"], [target])
        conns = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(4)]
        for reader, writer in conns:
            assert await answered(reader, writer)  # now idle keep-alive connections
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await answered(reader, writer)
        assert await closed_by_peer(conns[0][0])  # the oldest idle one
        assert proxy.connection_counts() == (4, 4)
        for _, w in [*conns, (reader, writer)]:
            w.close()


async def test_at_max_connections_with_none_idle_a_new_connection_is_closed_at_once() -> None:
    async with silent_backend() as (target, _, _), running_proxy(max_connections=3) as proxy:
        proxy.set_app("a", ["h"], [target])
        busy = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(3)]
        for _, writer in busy:
            writer.write(GET)
        await until(lambda: proxy.inflight() == {target: 3})
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await closed_by_peer(reader)
        assert proxy.state.refused == 1
        assert proxy.inflight() == {target: 3}  # the busy ones are untouched
        for _, w in [*busy, (reader, writer)]:
            w.close()


async def test_max_connections_per_ip_and_trusted_proxies_are_exempt() -> None:
    async with backend() as target, running_proxy(max_connections_per_ip=2) as proxy:
        proxy.set_app("a", ["h"], [target])
        two = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2)]
        for reader, writer in two:
            assert await answered(reader, writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await closed_by_peer(reader)
        for _, w in [*two, (reader, writer)]:
            w.close()
    async with backend() as target, running_proxy(max_connections_per_ip=2, trusted_proxies=("127.0.0.1",)) as proxy:
        proxy.set_app("a", ["h"], [target])
        three = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(3)]
        for reader, writer in three:
            assert await answered(reader, writer)
            writer.close()


async def test_start_raises_the_descriptor_limit_and_keeps_max_connections_within_it() -> None:
    async with running_proxy() as proxy:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY:
            assert soft == hard
            assert proxy.connection_counts()[1] <= max(1, (soft - FD_RESERVE) // 2)
        assert proxy.connection_counts()[0] == 0
