"""Swaps under load, drain waiting and cancelling, in-flight accounting."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from .utils import backend, running_proxy


async def test_many_swaps_under_load() -> None:
    retired: set[str] = set()
    violations: list[str] = []
    hits: dict[str, int] = {}

    def make(name: str):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            if name in retired:
                violations.append(name)
            hits[name] = hits.get(name, 0) + 1
            await asyncio.sleep(0.001)
            return web.Response(text=name)

        return handler

    names = ["b0", "b1", "b2", "b3"]
    async with backend([("GET", "/w", make("b0"))], "b0") as t0, backend([("GET", "/w", make("b1"))], "b1") as t1, \
            backend([("GET", "/w", make("b2"))], "b2") as t2, backend([("GET", "/w", make("b3"))], "b3") as t3, \
            running_proxy() as proxy:
        targets = dict(zip(names, [t0, t1, t2, t3], strict=True))
        by_target = {v: k for k, v in targets.items()}
        proxy.set_app("a", ["h"], [t0, t1])
        stop = asyncio.Event()
        failures: list[str] = []
        done = 0

        async def client() -> None:
            nonlocal done
            async with aiohttp.ClientSession() as s:
                while not stop.is_set():
                    try:
                        async with s.get(f"http://127.0.0.1:{proxy.port}/w", headers={"Host": "h"}) as r:
                            body = await r.text()
                            if r.status != 200:
                                failures.append(f"{r.status} {body[:60]}")
                    except aiohttp.ClientError as exc:
                        failures.append(repr(exc))
                    done += 1

        clients = [asyncio.create_task(client()) for _ in range(8)]
        current = [t0, t1]
        for i in range(20):
            await asyncio.sleep(0.01)
            new = [t2, t3] if i % 2 == 0 else [t0, t1]
            retired.difference_update(by_target[t] for t in new)
            proxy.set_app("a", ["h"], new)
            assert proxy.table.lookup("h", "/w").targets == tuple(new)  # type: ignore[union-attr]
            old = current
            current = new
            await proxy.drain(old, 2.0)
            retired.update(by_target[t] for t in old)
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*clients)
        assert failures == []
        assert violations == []
        assert done > 100
        assert proxy.inflight() == {}
        assert proxy.stats("a")["inflight"] == 0


async def test_drain_waits_for_slow_request() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="slow done")

    async with backend([("GET", "/slow", slow)]) as old, backend() as new, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [old])
        async with aiohttp.ClientSession() as s:
            req = asyncio.create_task(s.get(f"http://127.0.0.1:{proxy.port}/slow", headers={"Host": "h"}))
            while proxy.inflight().get(old) != 1:
                await asyncio.sleep(0.005)
            proxy.set_app("a", ["h"], [new])
            drain = asyncio.create_task(proxy.drain([old], 5.0))
            await asyncio.sleep(0.05)
            assert not drain.done()
            release.set()
            assert await drain == 0
            resp = await req
            assert resp.status == 200 and await resp.text() == "slow done"
            resp.release()


async def test_drain_cancels_at_timeout() -> None:
    finish = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await finish.wait()
        return web.Response(text="never")

    async with backend([("GET", "/stuck", stuck)]) as old, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [old])
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{proxy.port}/warm", headers={"Host": "h"}) as r:
                assert r.status == 200  # a pooled connection: the next request takes the fast path
            reqs = [asyncio.create_task(s.get(f"http://127.0.0.1:{proxy.port}/stuck", headers={"Host": "h"}))
                    for _ in range(3)]
            while proxy.inflight().get(old) != 3:
                await asyncio.sleep(0.005)
            proxy.set_app("a", ["h"], [])
            assert await proxy.drain([old], 0.05) == 3
            for task in reqs:
                resp = await task
                assert resp.status == 504
                resp.release()
        assert proxy.inflight() == {}
        finish.set()


async def test_draining_target_gets_no_new_requests() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="a")

    async with backend([("GET", "/slow", slow)], "a") as a, backend(name="b") as b, running_proxy() as proxy:
        proxy.set_app("app", ["h"], [a, b])
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{proxy.port}"
            first = asyncio.create_task(s.get(url + "/slow", headers={"Host": "h"}))
            while proxy.inflight().get(a) != 1:
                await asyncio.sleep(0.005)
            drain = asyncio.create_task(proxy.drain([a], 5.0))
            await asyncio.sleep(0)
            for _ in range(4):  # the table still lists a, but a is draining
                async with s.get(url + "/x", headers={"Host": "h"}) as r:
                    assert (await r.json())["name"] == "b"
            release.set()
            assert await drain == 0
            (await first).release()
