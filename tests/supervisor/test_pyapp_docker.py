"""Swaps of a real keep-alive app (aiohttp in a Debian image): pooled upstream connections,
WebSockets and SSE through the proxy, across deploys, on real Docker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy import Proxy
from tests.conftest import TEST_LABELS
from tests.utils import Load, make_config, stack

pytestmark = pytest.mark.docker
HOST = "py.test"


@pytest.fixture(scope="session")
def py_images(docker_client: Any) -> dict[str, str]:
    from bench.images import build_python_app_image

    tags = {}
    for version in ("v1", "v2"):
        tag = f"dockyard-test-pyapp-{TEST_LABELS['dockyard.test']}:{version}"
        build_python_app_image(tag, version, labels=TEST_LABELS, client=docker_client)
        tags[version] = tag
    return tags


def py_app(image: str, **extra: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "image": image,
        "hosts": [HOST],
        "retire_after": 0,
        "stop_timeout": 3,
        "drain_timeout": 1,
        "processes": {"web": {"scale": 2}},
        "healthchecks": {"web": [{"path": "/health", "content": "ok", "attempts": 20, "wait": 0.2,
                                  "timeout": 2}]},
    }
    app.update(extra)
    return app


async def test_keep_alive_app_swaps_under_load_without_a_failed_request(
    tmp_path: Path, docker_client: Any, py_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"py": py_app(py_images["v1"])})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("py")).ok
        async with Load(f"http://127.0.0.1:{s.proxy.port}/", HOST, rate=300) as load:
            await asyncio.sleep(0.5)
            for version in ("v2", "v1", "v2", "v1", "v2", "v1"):
                report = await s.sup.deploy("py", py_images[version])
                assert report.ok, report.reason
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.5)
        await s.sup.retirer.wait_idle()
    assert load.failures == [], load.failures[:5]
    assert {b.split()[0] for _, _, _, b in load.results} == {"v1", "v2"}


async def test_websocket_and_sse_through_the_proxy_across_a_swap(
    tmp_path: Path, docker_client: Any, py_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"py": py_app(py_images["v1"], processes={"web": {"scale": 1}})})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("py")).ok
        base = f"http://127.0.0.1:{s.proxy.port}"
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(base + "/ws", headers={"Host": HOST})
            await ws.send_str("hello")
            assert (await ws.receive()).data == "hello"
            # SSE: the first event arrives while the app still sleeps before the second.
            async with session.get(base + "/sse?n=3&ms=700", headers={"Host": HOST}) as resp:
                first = await resp.content.readuntil(b"\n\n")
                got_first = time.monotonic()
                assert first == b"data: 0 v1\n\n"
                rest = await resp.content.read()
                assert time.monotonic() - got_first > 1.0
                assert rest == b"data: 1 v1\n\ndata: 2 v1\n\n"
            # A swap: the old WebSocket keeps working until the drain timeout closes it (1001).
            report = await s.sup.deploy("py", py_images["v2"])
            assert report.ok
            await ws.send_str("still there")
            assert (await ws.receive()).data == "still there"
            closing = await ws.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1001
            ws2 = await session.ws_connect(base + "/ws", headers={"Host": HOST})
            await ws2.send_str("new")
            assert (await ws2.receive()).data == "new"
            await ws2.close()
            async with session.get(base + "/", headers={"Host": HOST}) as resp:
                assert (await resp.text()).startswith("v2 ")
        await s.sup.retirer.wait_idle()


async def test_a_deploy_warms_the_new_containers_connections_before_the_swap(
    tmp_path: Path, docker_client: Any, py_images: dict[str, str]
) -> None:
    """The serving containers hold pooled connections; the new ones get as many before the
    switch (proxy.warm), and the first requests after the swap use them."""
    config = make_config(tmp_path, {"py": py_app(py_images["v1"])})
    async with stack(config, docker_client, workers=0) as s:  # looks inside the proxy's connection pool
        assert isinstance(s.proxy, Proxy)
        assert (await s.sup.deploy("py")).ok
        url = f"http://127.0.0.1:{s.proxy.port}/"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one() -> int:
                async with session.get(url, headers={"Host": HOST}) as resp:
                    await resp.read()
                    return resp.status

            assert await asyncio.gather(*(one() for _ in range(12))) == [200] * 12
            old = s.sup.targets("py")
            held = sum(s.proxy.pool.idle_count(t) for t in old)
            assert held >= 2  # 12 concurrent requests left pooled connections to v1

            warmed: list[int] = []

            def on_event(event: Any) -> None:
                if event.get("step") == "swap" and event.get("status") == "done":
                    new = s.sup.targets("py")
                    warmed.extend(s.proxy.pool.idle_count(t) for t in new)

            report = await s.sup.deploy("py", py_images["v2"], progress=on_event)
            assert report.ok, report.reason
            assert len(warmed) == 2 and sum(warmed) >= held  # split across the 2 new containers
            new = s.sup.targets("py")
            allowances = [s.proxy.pool.allowance(t) for t in new]
            for _ in range(4):  # one at a time, so each finds a warmed connection idle
                assert await one() == 200
            # served on the warmed connections: no new connection answered a first head
            assert [s.proxy.pool.allowance(t) for t in new] == allowances
