"""Rollouts in the real proxy: the weighted draw, the cookie, counters per release."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from proxy.errors import InvalidRouteError
from proxy.rollout import cookie_value
from proxy.routes import make_service

from .utils import backend, running_proxy


def named(name: str, status: int = 200):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=name, status=status)

    return [("GET", "/", handler)]


async def test_weighted_draw_within_two_points_over_10000_requests() -> None:
    async with backend(named("old"), "old") as old, backend(named("new"), "new") as new, \
            running_proxy() as proxy:
        proxy.state.rollouts.seed(22)
        proxy.set_app("a", ["h"], [old], release="1", canary_release="2", canary_targets=[new],
                      canary_percent=20)
        got = {"old": 0, "new": 0}
        cookies: set[str] = set()
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as s:

            async def one() -> None:
                async with s.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "h"}) as r:
                    got[await r.text()] += 1
                    cookies.add(r.headers["Set-Cookie"])

            for _ in range(100):
                await asyncio.gather(*(one() for _ in range(100)))
        share = got["new"] / 10_000 * 100
        assert abs(share - 20) <= 2, got
        assert cookies == {
            "dockyard-rollout-a=1; Path=/; HttpOnly; SameSite=Lax",
            "dockyard-rollout-a=2; Path=/; HttpOnly; SameSite=Lax",
        }
        stats = proxy.release_stats("a")
        assert stats["2"]["requests"] == got["new"]
        assert stats["1"]["requests"] == got["old"]


async def test_cookie_keeps_a_client_on_its_release_and_falls_back_when_it_is_gone() -> None:
    async with backend(named("old"), "old") as old, backend(named("new"), "new") as new, \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [old], release="1", canary_release="2", canary_targets=[new],
                      canary_percent=50)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:  # keeps cookies
            async with s.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "h"}) as r:
                first = await r.text()
                assert "Set-Cookie" in r.headers
            for _ in range(30):
                async with s.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "h"}) as r:
                    assert await r.text() == first
                    assert "Set-Cookie" not in r.headers
        # An explicit cookie naming the canary, then the canary rolled back: the old release.
        url = f"http://127.0.0.1:{proxy.port}/"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            headers = {"Host": "h", "Cookie": "x=1; dockyard-rollout-a=2"}
            async with s.get(url, headers=headers) as r:
                assert await r.text() == "new"
            proxy.set_app("a", ["h"], [old], release="1")
            async with s.get(url, headers=headers) as r:
                assert await r.text() == "old"
                assert "Set-Cookie" not in r.headers
            # promoted: everyone on the new release, whatever their cookie says
            proxy.set_app("a", ["h"], [new], release="2")
            async with s.get(url, headers={"Host": "h", "Cookie": "dockyard-rollout-a=1"}) as r:
                assert await r.text() == "new"


async def test_counters_per_release_count_5xx_and_connection_failures() -> None:
    async with backend(named("old"), "old") as old, backend(named("bad", 500), "bad") as bad, \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [old], release="1", canary_release="2",
                      canary_targets=[bad, "127.0.0.1:1"], canary_percent=100)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            for _ in range(20):
                async with s.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "h"}) as r:
                    await r.read()
        stats = proxy.release_stats("a")
        assert stats["2"]["requests"] == 20
        assert stats["2"]["status"]["5xx"] == 20
        assert stats["2"]["failures"] >= 5  # the refusing target, retried on the other one
        assert stats["1"]["requests"] == 0
        assert proxy.release_stats_all()["a"] == stats


def test_cookie_value_parsing() -> None:
    lines = [b"Accept: */*\r\n", b"cookie: a=1; dockyard-rollout-x=\"7\"; b=2\r\n"]
    assert cookie_value(lines, b"dockyard-rollout-x") == b"7"
    assert cookie_value(lines, b"dockyard-rollout-y") is None


def test_rollout_validation() -> None:
    with pytest.raises(InvalidRouteError):
        make_service("a", ["h"], ["127.0.0.1:1"], canary_release="2")
    with pytest.raises(InvalidRouteError):
        make_service("a", ["h"], ["127.0.0.1:1"], release="2", canary_release="2")
    with pytest.raises(InvalidRouteError):
        make_service("a", ["h"], ["127.0.0.1:1"], release="1", canary_release="2",
                     canary_targets=["127.0.0.1:2"], canary_percent=101)
    svc = make_service("a", ["h"], ["127.0.0.1:1"], release="1", canary_release="2",
                       canary_targets=["127.0.0.1:2"], canary_percent=10)
    assert svc.targets == ("127.0.0.1:1", "127.0.0.1:2")
    assert svc.rollout is not None and svc.rollout.canary is not None
    assert svc.rollout.canary.targets == ("127.0.0.1:2",)
    assert svc.rollout.stable.targets == ("127.0.0.1:1",)
