"""Streaming: SSE event by event, 50 MB up and down checked by hash."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from .utils import backend, running_proxy

SIZE = 50 * 1024 * 1024
CHUNK = 256 * 1024


def chunk(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK


async def test_sse_event_by_event() -> None:
    second = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(b"data: one\n\n")
        await second.wait()
        await resp.write(b"data: two\n\n")
        await resp.write_eof()
        return resp

    async with backend([("GET", "/events", events)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{proxy.port}/events", headers={"Host": "h"}) as r:
                assert r.headers["Content-Type"] == "text/event-stream"
                async with asyncio.timeout(5):
                    first = await r.content.readuntil(b"\n\n")
                assert first == b"data: one\n\n"
                second.set()
                assert await r.content.readuntil(b"\n\n") == b"data: two\n\n"


async def test_large_bodies_streamed_both_ways() -> None:
    async def upload(request: web.Request) -> web.Response:
        h = hashlib.sha256()
        async for data in request.content.iter_any():
            h.update(data)
        return web.Response(text=h.hexdigest())

    async def download(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = SIZE
        await resp.prepare(request)
        for i in range(SIZE // CHUNK):
            await resp.write(chunk(i))
        return resp

    async def body() -> AsyncIterator[bytes]:
        for i in range(SIZE // CHUNK):
            yield chunk(i)

    expected = hashlib.sha256()
    for i in range(SIZE // CHUNK):
        expected.update(chunk(i))

    async with backend([("POST", "/up", upload), ("GET", "/down", download)]) as target, \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{proxy.port}"
            async with s.post(url + "/up", data=body(), headers={"Host": "h"}) as r:  # chunked upload
                assert r.status == 200
                assert await r.text() == expected.hexdigest()
            async with s.get(url + "/down", headers={"Host": "h"}) as r:
                assert r.headers["Content-Length"] == str(SIZE)
                h = hashlib.sha256()
                async for data in r.content.iter_any():
                    h.update(data)
                assert h.hexdigest() == expected.hexdigest()
