"""WebSockets: proxied both ways, counted in flight, kept across a swap, closed 1001 by a drain."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSMsgType, web

from .utils import backend, running_proxy


def ws_handler(name: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"{name}:{msg.data}")
        return ws

    return handler


async def test_websocket_echo_across_swap() -> None:
    async with backend([("GET", "/ws", ws_handler("old"))]) as old, \
            backend([("GET", "/ws", ws_handler("new"))]) as new, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [old])
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{proxy.port}/ws"
            async with s.ws_connect(url, headers={"Host": "h"}) as ws1:
                await ws1.send_str("hi")
                assert await ws1.receive_str() == "old:hi"
                assert proxy.inflight() == {old: 1}
                proxy.set_app("a", ["h"], [new])
                await ws1.send_str("still")
                assert await ws1.receive_str() == "old:still"
                async with s.ws_connect(url, headers={"Host": "h"}) as ws2:
                    await ws2.send_str("hi")
                    assert await ws2.receive_str() == "new:hi"
                await ws1.close()
            for _ in range(100):
                if not proxy.inflight():
                    break
                await asyncio.sleep(0.01)
            assert proxy.inflight() == {}


async def test_drain_closes_websocket_with_1001() -> None:
    async with backend([("GET", "/ws", ws_handler("old"))]) as old, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [old])
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws", headers={"Host": "h"}) as ws:
                await ws.send_str("hi")
                assert await ws.receive_str() == "old:hi"
                proxy.set_app("a", ["h"], [])
                assert await proxy.drain([old], 0.05) == 1
                msg = await ws.receive()
                assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
                assert ws.close_code == 1001
        assert proxy.inflight() == {}
