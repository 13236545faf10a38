"""Error answers: 404/503/502/504, JSON pages, limits, retries."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from .utils import backend, free_port, parse_response, raw_backend, raw_request, running_proxy


async def test_unknown_host_404_html_and_json() -> None:
    async with running_proxy() as proxy:
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: nope\r\nConnection: close\r\n\r\n")
        status, headers, body = parse_response(raw)
        assert status == 404 and headers["content-type"].startswith("text/html")
        raw = await raw_request(
            proxy.port, b"GET / HTTP/1.1\r\nHost: nope\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = parse_response(raw)
        assert status == 404 and headers["content-type"] == "application/json"
        assert json.loads(body)["status"] == 404


async def test_no_targets_503() -> None:
    async with running_proxy() as proxy:
        proxy.set_app("a", ["h"], [])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert parse_response(raw)[0] == 503
        assert proxy.stats("a")["status"]["5xx"] == 1


async def test_refused_502() -> None:
    async with running_proxy() as proxy:
        proxy.set_app("a", ["h"], [f"127.0.0.1:{free_port()}"])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert parse_response(raw)[0] == 502


async def test_upstream_timeout_504() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async with backend([("GET", "/slow", slow)]) as target, running_proxy(upstream_response_timeout=0.05) as proxy:
        proxy.set_app("a", ["h"], [target])
        for _ in range(2):  # first on a new connection, then on the pooled one (fast path)
            raw = await raw_request(proxy.port, b"GET /slow HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            assert parse_response(raw)[0] == 504
        await raw_request(proxy.port, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        raw = await raw_request(proxy.port, b"GET /slow HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert parse_response(raw)[0] == 504


async def test_idempotent_request_retried_on_other_target() -> None:
    async with raw_backend(lambda head: None) as (bad, bad_seen), backend(name="good") as good, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [bad, good])
        for _ in range(4):
            raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            status, _, body = parse_response(raw)
            assert status == 200 and json.loads(body)["name"] == "good"
        assert len(bad_seen) >= 1


async def test_post_not_retried_after_reset() -> None:
    good_hits = 0

    async def count(request: web.Request) -> web.Response:
        nonlocal good_hits
        good_hits += 1
        return web.Response(text="ok")

    async with raw_backend(lambda head: None) as (bad, bad_seen), backend([("POST", "/", count)]) as good, \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [bad, good])
        statuses = []
        for _ in range(4):
            raw = await raw_request(
                proxy.port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            )
            statuses.append(parse_response(raw)[0])
        assert statuses.count(502) == len(bad_seen) == 2
        assert statuses.count(200) == good_hits == 2


async def test_header_too_large_431_and_body_too_large_413() -> None:
    async with backend() as target, running_proxy(max_header_size=1024, max_body_size=100) as proxy:
        proxy.set_app("a", ["h"], [target])
        warm = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert parse_response(warm)[0] == 200  # pooled: requests below take the fast path
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        assert parse_response(raw)[0] == 431
        # a head that never ends is cut too
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 5000)
        assert parse_response(raw)[0] == 431
        raw = await raw_request(proxy.port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n" + b"x" * 101)
        assert parse_response(raw)[0] == 413
        raw = await raw_request(
            proxy.port,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" + b"x" * 128 + b"\r\n0\r\n\r\n",
        )
        assert parse_response(raw)[0] == 413


async def test_slowloris_closed() -> None:
    async with running_proxy(client_header_timeout=0.05, client_idle_timeout=0.05) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n")
        async with asyncio.timeout(5):
            data = await reader.read()  # the proxy closes
        assert data.startswith(b"HTTP/1.1 408") or data == b""
        writer.close()
        # idle keep-alive connection closed too
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()


async def test_a_refused_target_is_reported_once_per_failed_connection_and_a_good_one_never() -> None:
    """Passive health's hook (the supervisor confirms and takes the target out of every table)."""
    dead = f"127.0.0.1:{free_port()}"
    reports: list[tuple[str, str]] = []
    async with backend(name="good") as good, running_proxy() as proxy:
        proxy.on_target_failed(lambda app, target: reports.append((app, target)))
        proxy.set_app("a", ["h"], [dead, good])
        for _ in range(4):  # round robin: two of the four start on the dead target, then retry
            raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            assert parse_response(raw)[0] == 200
        assert reports and set(reports) == {("a", dead)}
        reports.clear()
        proxy.set_app("a", ["h"], [good])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert parse_response(raw)[0] == 200 and reports == []
