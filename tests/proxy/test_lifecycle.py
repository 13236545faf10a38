"""Balancing, start on a given socket, stop with in-flight requests."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from proxy import Proxy, ProxyOptions
from proxy.balancer import Balancer
from proxy.inflight import InflightTracker
from proxy.routes import make_service

from .utils import backend, parse_response, raw_request


def test_round_robin_and_least_inflight() -> None:
    tracker = InflightTracker()
    bal = Balancer(tracker)
    rr = make_service("a", ["h"], ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"])
    assert [bal.pick(rr) for _ in range(4)] == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1"]
    assert bal.pick(rr, ["127.0.0.1:2", "127.0.0.1:3"]) == "127.0.0.1:1"
    li = make_service("b", ["h"], ["127.0.0.1:1", "127.0.0.1:2"], balance="least_inflight")
    tracker.claim("127.0.0.1:1", "b", lambda: None)
    assert [bal.pick(li) for _ in range(3)] == ["127.0.0.1:2"] * 3
    assert bal.pick(make_service("c", ["h"], [])) is None


async def test_start_on_given_socket() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    proxy = Proxy(ProxyOptions())
    await proxy.start("127.0.0.1", 0, sock=sock)
    try:
        assert proxy.port == sock.getsockname()[1]
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert parse_response(raw)[0] == 404
    finally:
        await proxy.stop(0.1)


async def test_stop_waits_for_inflight_then_refuses() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async with backend([("GET", "/slow", slow)]) as target:
        proxy = Proxy(ProxyOptions())
        await proxy.start("127.0.0.1", 0)
        proxy.set_app("a", ["h"], [target])
        port = proxy.port
        async with aiohttp.ClientSession() as s:
            req = asyncio.create_task(s.get(f"http://127.0.0.1:{port}/slow", headers={"Host": "h"}))
            while not proxy.inflight():
                await asyncio.sleep(0.005)
            stopping = asyncio.create_task(proxy.stop(5.0))
            await asyncio.sleep(0.05)
            assert not stopping.done()
            release.set()
            await stopping
            resp = await req
            assert resp.status == 200 and await resp.text() == "done"
            assert resp.headers.get("Connection", "").lower() == "close"
            resp.release()
        try:
            await asyncio.open_connection("127.0.0.1", port)
            refused = False
        except OSError:
            refused = True
        assert refused
