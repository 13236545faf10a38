"""Hostile backends (issue #17, items 11-14): 502 and a closed upstream connection, never reused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from .utils import backend, parse_response, raw_request, rss_mib, running_proxy


@asynccontextmanager
async def scripted_backend(answer: Callable[[bytes], bytes]) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw keep-alive backend: writes answer(head) for every request head, never closes first.
    Yields (target, connections): how many requests each connection carried."""
    conns: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(conns)
        conns.append(0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                conns[index] += 1
                writer.write(answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", conns
    finally:
        server.close()


INJECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked"


async def test_a_second_response_in_the_same_write_is_dropped_and_never_reaches_the_next_request() -> None:
    async with scripted_backend(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + INJECTED) as (a, conns), \
            backend(name="B") as b, running_proxy() as proxy:
        proxy.set_app("a", ["a.test"], [a])
        proxy.set_app("b", ["b.test"], [b])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
                                b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
        assert b"hacked" not in raw
        first, second = raw.split(b"HTTP/1.1 200")[1:]
        assert first.endswith(b"\r\n\r\nok")
        assert json.loads(parse_response(b"HTTP/1.1 200" + second)[2])["name"] == "B"
        # The upstream connection that carried junk was closed, not reused.
        again = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        assert again.endswith(b"\r\n\r\nok")
        assert conns == [1, 1]


async def test_a_204_with_a_body_is_delivered_and_the_connection_dropped() -> None:
    async with scripted_backend(lambda _: b"HTTP/1.1 204 No Content\r\n\r\njunk") as (a, conns), \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [a])
        for _ in range(2):
            raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", timeout=3)
            assert raw.startswith(b"HTTP/1.1 204") and b"junk" not in raw
        assert conns == [1, 1]


async def test_a_body_longer_than_content_length_is_cut_and_the_connection_dropped() -> None:
    async with scripted_backend(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES") as (a, conns), \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [a])
        for _ in range(2):
            raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", timeout=3)
            assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"\r\n\r\nok")
        assert conns == [1, 1]


SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


async def test_an_unsolicited_101_gets_502_and_never_becomes_a_tunnel() -> None:
    async with scripted_backend(lambda _: SWITCH) as (a, _), backend(name="B") as b, running_proxy() as proxy:
        proxy.set_app("a", ["a.test"], [a])
        proxy.set_app("b", ["b.test"], [b])
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 502")
            writer.write(b"GET / HTTP/1.1\r\nHost: b.test\r\nCookie: secret\r\n\r\n")
            rest = await reader.read()  # closed after the 502: the cookie never reached app A
        writer.close()
        assert b"secret" not in rest


async def test_a_101_for_another_protocol_than_asked_gets_502() -> None:
    h2c = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    async with scripted_backend(lambda _: h2c) as (a, _), running_proxy() as proxy:
        proxy.set_app("a", ["h"], [a])
        raw = await raw_request(proxy.port, b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                                b"Upgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 502")


async def test_an_endless_response_head_gets_502_with_memory_bounded() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for _ in range(256):  # up to 64 MiB of header lines, 256 KiB at a time
                writer.write(line * 256)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        before = rss_mib()
        answers = await asyncio.gather(*(raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                                         for _ in range(4)))
        grown = rss_mib() - before
    server.close()
    assert all(parse_response(a)[0] == 502 for a in answers)
    assert grown < 32, f"RSS grew by {grown:.0f} MiB"


async def test_a_transfer_coding_other_than_chunked_gets_502() -> None:
    gz = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    async with scripted_backend(lambda _: gz) as (a, _), running_proxy() as proxy:
        proxy.set_app("a", ["h"], [a])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert parse_response(raw)[0] == 502
