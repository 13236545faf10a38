"""Forwarding correctness: headers, framing, HEAD/204/304, Connection: close backends."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from .utils import backend, parse_response, raw_backend, raw_request, running_proxy


async def test_headers_forwarded_and_stripped() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["example.com"], [target])
        raw = await raw_request(
            proxy.port,
            b"GET /p?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\nConnection: close, X-Secret\r\n"
            b"X-Secret: s\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nTE: trailers\r\n"
            b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Custom: yes\r\n\r\n",
        )
        status, headers, body = parse_response(raw)
        assert status == 200
        seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert json.loads(body)["path"] == "/p?q=1"
        assert seen["host"] == "Example.com:8080"
        assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's own value is not believed
        assert seen["x-real-ip"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-port"] == str(proxy.port)
        assert seen["x-forwarded-host"] == "Example.com:8080"
        assert seen["x-custom"] == "yes"
        assert len(seen["x-request-id"]) == 32
        for gone in ("x-secret", "keep-alive", "proxy-authorization", "te", "accept-encoding", "user-agent"):
            assert gone not in seen
        assert seen.get("connection", "keep-alive").lower() != "close"


async def test_request_id_kept() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-1\r\nConnection: close\r\n\r\n")
        _, _, body = parse_response(raw)
        seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert seen["x-request-id"] == "abc-1"


async def test_response_hop_by_hop_stripped_and_keepalive() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Keep-Alive": "timeout=5", "X-App": "1", "Connection": "X-App"})

    async with backend([("GET", "/hop", handler)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.get(f"http://127.0.0.1:{proxy.port}/hop", headers={"Host": "h"}) as r:
                    assert r.status == 200
                    assert await r.text() == "ok"
                    assert "Keep-Alive" not in r.headers
                    assert "X-App" not in r.headers


async def test_head_204_304() -> None:
    async def head(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100)

    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def not_modified(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": '"1"'})

    routes = [("GET", "/head", head), ("HEAD", "/head", head), ("GET", "/204", no_content), ("GET", "/304", not_modified)]
    async with backend(routes) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        async with aiohttp.ClientSession() as s:
            base = f"http://127.0.0.1:{proxy.port}"
            for _ in range(2):  # the same pooled connection must stay in sync
                async with s.head(base + "/head", headers={"Host": "h"}) as r:
                    assert r.status == 200
                    assert r.headers["Content-Length"] == "100"
                    assert await r.read() == b""
                async with s.get(base + "/204", headers={"Host": "h"}) as r:
                    assert r.status == 204
                    assert await r.read() == b""
                async with s.get(base + "/304", headers={"Host": "h"}) as r:
                    assert r.status == 304
                    assert r.headers["ETag"] == '"1"'
                async with s.get(base + "/head", headers={"Host": "h"}) as r:
                    assert await r.read() == b"x" * 100


async def test_connection_close_backend_without_length() -> None:
    """busybox httpd style: Connection: close and the body ends at EOF."""
    answer = b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nhello busybox"
    async with raw_backend(lambda head: answer) as (target, seen), running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "h"}) as r:
                    assert r.status == 200
                    assert await r.text() == "hello busybox"
        assert len(seen) == 3
        # HTTP/1.0 client: close-delimited
        raw = await raw_request(proxy.port, b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
        status, headers, body = parse_response(raw)
        assert status == 200 and body == b"hello busybox"
        assert headers["connection"] == "close"


async def test_chunked_request_and_response() -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(data)
        await resp.write(b"!")
        await resp.write_eof()
        return resp

    async with backend([("POST", "/echo", echo)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(
            proxy.port,
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        status, headers, body = parse_response(raw)
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        assert b"hello world" in body and body.endswith(b"0\r\n\r\n")


async def test_pipelined_requests_answered_in_order() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        raw = await raw_request(
            proxy.port,
            b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        assert raw.count(b"HTTP/1.1 200") == 3
        assert raw.index(b'"/1"') < raw.index(b'"/2"') < raw.index(b'"/3"')


async def test_stats_and_access_log(caplog) -> None:  # type: ignore[no-untyped-def]
    async with backend() as target, running_proxy(access_log=True) as proxy:
        proxy.set_app("a", ["h"], [target])
        with caplog.at_level("INFO", logger="dockyard.proxy.access"):
            await raw_request(proxy.port, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        line = json.loads([r.message for r in caplog.records if r.name == "dockyard.proxy.access"][0])
        assert line["status"] == 200 and line["app"] == "a" and line["path"] == "/x"
        st = proxy.stats("a")
        assert st["requests"] == 1 and st["status"]["2xx"] == 1 and st["inflight"] == 0
        assert sum(st["latency_buckets"].values()) == 1
        assert "a" in proxy.stats_all()
