"""Hostile clients (issue #17, items 1-3 and 5-10): each attack once, against the real proxy.

Memory-bound tests measure this process's RSS (the proxy runs in it) with generous bounds.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from proxy.options import MAX_PIPELINED

from .test_websocket import ws_handler
from .utils import (
    FINE_SWEEP,
    backend,
    parse_response,
    raw_request,
    rss_mib,
    running_proxy,
    silent_backend,
    until,
)

UPGRADE_HEAD = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def seen_headers(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


# -- 1. Upgrade and CONNECT ---------------------------------------------------------------------
async def _push_after_upgrade_head(port: int, total: int) -> int:
    """Send an upgrade head, then up to `total` bytes until the proxy stops taking them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk = b"x" * (64 * 1024)  # small: the client's own buffers are in this process too
    sent = 0
    try:
        writer.write(UPGRADE_HEAD)
        while sent < total:
            writer.write(chunk)
            async with asyncio.timeout(0.5):
                await writer.drain()
            sent += len(chunk)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.transport.abort()
    return sent


async def test_bytes_after_an_upgrade_head_are_not_buffered_without_bound() -> None:
    async with silent_backend() as (target, _, _), running_proxy(upstream_response_timeout=30.0) as proxy:
        proxy.set_app("a", ["h"], [target])
        await _push_after_upgrade_head(proxy.port, 1 << 20)  # warm up allocators
        before = rss_mib()
        await asyncio.gather(*(_push_after_upgrade_head(proxy.port, 10 << 20) for _ in range(100)))
        grown = rss_mib() - before
        assert grown < 32, f"RSS grew by {grown:.0f} MiB"
        held = [len(b"".join(c.upgrade_tail)) for c in proxy.connections]  # type: ignore[attr-defined]
        assert all(n <= 64 * 1024 for n in held)


async def test_connect_is_refused_with_405() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["example.com"], [target])
        raw = await raw_request(proxy.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        status, headers, _ = parse_response(raw)
        assert status == 405 and headers["connection"] == "close"


async def test_an_upgrade_other_than_websocket_is_removed_and_the_request_goes_on_as_plain() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        first = (b"GET /one HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                 b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
        second = b"GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        raw = await raw_request(proxy.port, first + second)
        assert raw.count(b"HTTP/1.1 200") == 2
        one = raw.split(b"HTTP/1.1 200")[1]
        body = one[one.index(b"\r\n\r\n") + 4:]
        body = body[: body.index(b"}]}") + 3] if b"}]}" in body else body
        seen = seen_headers(body)
        assert "upgrade" not in seen and "http2-settings" not in seen


# -- 2. Body, send and tunnel timeouts ---------------------------------------------------------------
async def test_slow_bodies_get_408_at_the_body_timeout_and_free_the_backend() -> None:
    active = 0
    peak = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await request.read()
            return web.Response(text="read")
        except (ConnectionError, aiohttp.ClientPayloadError):  # the proxy aborted the request: freed
            return web.Response(status=400)
        finally:
            active -= 1

    async def client(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nx")
        try:
            async with asyncio.timeout(5):
                return await reader.read()
        finally:
            writer.close()

    async with backend([("POST", "/slow", slow)]) as target, \
            running_proxy(client_body_timeout=0.2, upstream_connect_timeout=3.0, **FINE_SWEEP) as proxy:
        proxy.set_app("a", ["h"], [target])
        answers = await asyncio.gather(*(client(proxy.port) for _ in range(200)))
        assert all(parse_response(a)[0] == 408 for a in answers)
        assert peak > 0
        await until(lambda: active == 0)
        assert proxy.inflight() == {}


async def test_a_client_that_never_reads_is_closed_at_the_send_timeout() -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"y" * 65536
        for _ in range(1024):  # 64 MiB, far beyond every buffer on the way
            await resp.write(chunk)
        return resp

    async with backend([("GET", "/big", big)]) as target, running_proxy(send_timeout=0.2, **FINE_SWEEP) as proxy:
        proxy.set_app("a", ["h"], [target])
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        await until(lambda: proxy.inflight() == {target: 1})
        await until(lambda: proxy.inflight() == {}, timeout=5)  # the slot is freed without a read
        writer.transport.abort()


async def test_an_idle_websocket_is_closed_at_the_tunnel_idle_timeout() -> None:
    async with backend([("GET", "/ws", ws_handler("b"))]) as target, running_proxy(tunnel_idle_timeout=0.2, **FINE_SWEEP) as proxy:
        proxy.set_app("a", ["h"], [target])
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws", headers={"Host": "h"}) as ws:
                await ws.send_str("hi")
                assert await ws.receive_str() == "b:hi"
                async with asyncio.timeout(5):
                    msg = await ws.receive()
                assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
        await until(lambda: proxy.inflight() == {})


# -- 3. Pipelining ---------------------------------------------------------------------------------------
async def test_a_pipelining_flood_queues_at_most_max_pipelined_requests() -> None:
    one = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    async with silent_backend() as (target, _, _), running_proxy(upstream_response_timeout=30.0) as proxy:
        proxy.set_app("a", ["h"], [target])
        before = rss_mib()
        writers = []
        for _ in range(20):
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(one * 20_000)
            writers.append(writer)
        await until(lambda: len(proxy.connections) == 20)
        await asyncio.sleep(0.3)
        queues = [len(c.queue) for c in proxy.connections]  # type: ignore[attr-defined]
        for writer in writers:
            writer.transport.abort()
        assert max(queues) <= MAX_PIPELINED
        assert rss_mib() - before < 64


async def test_more_pipelined_requests_than_the_queue_are_answered_up_to_it_then_closed() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * (MAX_PIPELINED + 10))
        answered = raw.count(b"HTTP/1.1 200")
        assert MAX_PIPELINED < answered < MAX_PIPELINED + 10  # the rest is the client's to retry
        assert raw.rstrip().endswith(b"}]]}") or b"Connection: close" in raw.split(b"HTTP/1.1 200")[-1]


# -- 5. Forwarding headers ---------------------------------------------------------------------------------
SPOOFED = (b"X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n"
           b"X-Forwarded-Port: 1\r\nX-Forwarded-Ssl: on\r\nX_Forwarded_Proto: https\r\n"
           b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Request-Id: <script>\r\n")


async def test_client_forwarding_headers_never_reach_the_app() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n" + SPOOFED + b"Connection: close\r\n\r\n")
        status, _, body = parse_response(raw)
        assert status == 200
        seen = seen_headers(body)
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-real-ip"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == "h"
        assert seen["x-forwarded-port"] == str(proxy.port)
        assert "forwarded" not in seen and "x-forwarded-ssl" not in seen and "x_forwarded_proto" not in seen
        assert seen["x-request-id"] != "<script>" and len(seen["x-request-id"]) == 32


async def test_a_trusted_proxy_keeps_its_chain_and_the_client_is_the_rightmost_untrusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dockyard.proxy.access")
    async with backend() as target, running_proxy(trusted_proxies=("127.0.0.0/8", "10.0.0.0/8"),
                                                 access_log=True) as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6, 7.7.7.7, 10.1.2.3"
                                b"\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
        seen = seen_headers(parse_response(raw)[2])
        assert seen["x-forwarded-for"] == "6.6.6.6, 7.7.7.7, 10.1.2.3, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "https"
        assert seen["x-real-ip"] == "7.7.7.7"
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "dockyard.proxy.access"]
    assert logged and logged[-1]["client"] == "7.7.7.7"


@pytest.mark.parametrize("rid, kept", [(b"abc-1.x_Y", True), (b"a" * 128, True), (b"a" * 129, False),
                                       (b"a b", False), (b"id;rm", False)])
async def test_a_client_request_id_is_kept_only_when_it_is_a_short_safe_token(rid: bytes, kept: bool) -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: " + rid
                                + b"\r\nConnection: close\r\n\r\n")
        seen = seen_headers(parse_response(raw)[2])
        assert (seen["x-request-id"] == rid.decode()) is kept


# -- 6. Host and absolute-form ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", [b"evil.example#.w.test", b"a/b.w.test", b"a?.w.test", b"u@a.w.test",
                                  b"a b.w.test", b"\xff.w.test", b"a.w.test:80x", b"a.w.test:"])
async def test_an_invalid_host_gets_400(host: bytes) -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["*.w.test"], [target])
        raw = await raw_request(proxy.port, b"GET /reset HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert parse_response(raw)[0] == 400


async def test_absolute_form_is_routed_by_its_authority_and_forwarded_in_origin_form() -> None:
    async with backend(name="A") as a, backend(name="B") as b, running_proxy() as proxy:
        proxy.set_app("a", ["a.test"], [a])
        proxy.set_app("b", ["b.test"], [b])
        raw = await raw_request(proxy.port, b"GET http://b.test/p?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        status, _, body = parse_response(raw)
        assert status == 200
        doc = json.loads(body)
        assert doc["name"] == "B" and doc["path"] == "/p?q=1"
        assert seen_headers(body)["host"] == "b.test"
        bad = await raw_request(proxy.port, b"GET ftp://b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n")
        assert parse_response(bad)[0] == 400


# -- 7. Path normalization ------------------------------------------------------------------------------
@pytest.mark.parametrize("path, app", [(b"/%61pi/x", "API"), (b"/api/x", "API"), (b"/api/../internal", "ROOT"),
                                       (b"/api/%2e%2e/internal", "ROOT"), (b"/api/%2E%2E/internal", "ROOT"),
                                       (b"/x/../api/y", "API")])
async def test_path_prefix_routing_matches_the_normalized_path(path: bytes, app: str) -> None:
    async with backend(name="ROOT") as root, backend(name="API") as api, running_proxy() as proxy:
        proxy.set_app("root", ["h"], [root])
        proxy.set_app("api", ["h"], [api], path_prefix="/api")
        raw = await raw_request(proxy.port, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert json.loads(parse_response(raw)[2])["name"] == app


# -- 8, 9. Connection: host; Transfer-Encoding on HTTP/1.0 --------------------------------------------------
async def test_connection_cannot_remove_the_host_header() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, host\r\n\r\n")
        status, _, body = parse_response(raw)
        assert status == 200 and seen_headers(body)["host"] == "h"


async def test_transfer_encoding_on_http_1_0_gets_400() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"3\r\nabc\r\n0\r\n\r\n")
        assert parse_response(raw)[0] == 400


# -- 10. Expect: 100-continue is the app's to answer ---------------------------------------------------------
async def _expect_backend(answer_continue: bool, heads: list[bytes]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        if answer_continue:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(5)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n" + body)
        else:
            writer.write(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_expect_100_continue_is_forwarded_and_the_apps_answer_relayed() -> None:
    for answer_continue in (False, True):
        heads: list[bytes] = []
        server = await _expect_backend(answer_continue, heads)
        target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with running_proxy() as proxy:
            proxy.set_app("a", ["h"], [target])
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            async with asyncio.timeout(5):
                first = await reader.readuntil(b"\r\n\r\n")
                if answer_continue:
                    assert first.startswith(b"HTTP/1.1 100")
                    writer.write(b"hello")
                    rest = await reader.readuntil(b"hello")
                    assert rest.startswith(b"HTTP/1.1 200")
                else:
                    assert first.startswith(b"HTTP/1.1 417")  # no 100 from the proxy first
            writer.close()
        server.close()
        assert b"expect: 100-continue" in heads[0].lower()


async def test_an_http_1_0_client_never_gets_100_continue() -> None:
    async def read_first(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"headers": [[k, v] for k, v in request.headers.items()]})

    async with backend([("POST", "/read", read_first)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"POST /read HTTP/1.0\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        await until(lambda: proxy.inflight() == {target: 1})  # forwarded, the body still to come
        writer.write(b"hello")
        async with asyncio.timeout(5):
            raw = await reader.read()
        writer.close()
        assert raw.startswith(b"HTTP/1.1 200")  # and not with a 100 Continue
        assert "expect" not in seen_headers(parse_response(raw)[2])
