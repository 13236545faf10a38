"""Per-app edge policies (issue #21): each one against a real proxy and real backends."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import WSMsgType, web

from proxy.policy import BasicAuth, Policy, Redirect
from proxy.policy_auth import read_htpasswd

from .utils import (
    FINE_SWEEP,
    backend,
    free_port,
    parse_response,
    raw_backend,
    raw_request,
    running_proxy,
    silent_backend,
)


def htpasswd_line(user: str, password: str) -> str:
    """A line as `htpasswd -B` writes it (Apache's $2y$ prefix)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{user}:$2y${hashed[4:]}"


async def get(port: int, path: str = "/", host: str = "h", headers: dict[str, str] | None = None,
              **kw: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False,
                                                   headers={"Host": host, **(headers or {})}, **kw) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


def seen(body: bytes) -> dict[str, Any]:
    doc = json.loads(body)
    doc["headers"] = {k.lower(): v for k, v in doc["headers"]}
    return doc


async def test_an_app_without_a_policy_has_no_steps() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target])
        assert proxy.table.services["a"].steps is None
        proxy.set_app("b", ["b"], [target], policy=Policy())
        assert proxy.table.services["b"].steps is not None


def test_policy_round_trips_through_a_dict() -> None:
    policy = Policy(canonical_host="example.com", redirects=(Redirect("/old", "/new/$1", 308),),
                    basic_auth=BasicAuth("/etc/htpasswd", (("u", "$2y$05$x"),), "R", ("/health",)),
                    allow=("10.0.0.0/8",), headers=(("X-A", "1"),), max_body_size=10)
    assert Policy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert "$2y$05$x" not in json.dumps(policy.to_dict(secrets=False))


async def test_canonical_host_redirects_other_hosts_keeping_path_and_query() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["example.com", "www.example.com"], [target], policy=Policy(canonical_host="example.com"))
        status, headers, _ = await get(proxy.port, "/p/q?x=1", host="www.example.com")
        assert status == 301
        assert headers["location"] == "http://example.com/p/q?x=1"
        status, _, body = await get(proxy.port, "/p", host="example.com")
        assert status == 200 and seen(body)["path"] == "/p"


async def test_redirects_prefix_exact_capture_and_status() -> None:
    policy = Policy(redirects=(Redirect("/old", "/new/$1", 308), Redirect("/exact", "https://x.test/e", 302, exact=True),
                               Redirect("/docs", "/manual")))
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=policy)
        status, headers, _ = await get(proxy.port, "/old/a/b?q=1")
        assert (status, headers["location"]) == (308, "/new/a/b?q=1")
        status, headers, _ = await get(proxy.port, "/old")
        assert (status, headers["location"]) == (308, "/new/")
        status, headers, _ = await get(proxy.port, "/exact")
        assert (status, headers["location"]) == (302, "https://x.test/e")
        assert (await get(proxy.port, "/exact/more"))[0] == 200  # exact: no prefix match
        assert (await get(proxy.port, "/oldish"))[0] == 200  # a prefix matches whole segments
        status, headers, _ = await get(proxy.port, "/docs/x")
        assert (status, headers["location"]) == (301, "/manual")


async def test_strip_prefix_forwards_the_rest_and_x_forwarded_prefix() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], path_prefix="/api", policy=Policy(strip_prefix=True))
        doc = seen((await get(proxy.port, "/api/users?id=3"))[2])
        assert doc["path"] == "/users?id=3"
        assert doc["headers"]["x-forwarded-prefix"] == "/api"
        assert seen((await get(proxy.port, "/api"))[2])["path"] == "/"
        assert seen((await get(proxy.port, "/%61pi/x"))[2])["path"] == "/x"


async def test_basic_auth(tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    users.write_text(htpasswd_line("alice", "s3cret") + "\n")
    auth = BasicAuth(str(users), read_htpasswd(str(users)), realm="Staff", exempt=("/health",))
    good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"alice:nope").decode()
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(basic_auth=auth))
        status, headers, _ = await get(proxy.port, "/")
        assert status == 401
        assert headers["www-authenticate"] == 'Basic realm="Staff", charset="UTF-8"'
        assert (await get(proxy.port, "/", headers={"Authorization": bad}))[0] == 401
        assert (await get(proxy.port, "/", headers={"Authorization": "Bearer x"}))[0] == 401
        status, _, body = await get(proxy.port, "/", headers={"Authorization": good})
        assert status == 200
        steps = proxy.table.services["a"].steps
        assert steps is not None and steps.auth is not None and len(steps.auth._verified) == 1  # cached
        t0 = time.monotonic()
        for _ in range(20):
            assert (await get(proxy.port, "/", headers={"Authorization": good}))[0] == 200
        assert time.monotonic() - t0 < 2.0
        assert (await get(proxy.port, "/health"))[0] == 200  # exempt


def test_read_htpasswd_refuses_non_bcrypt_entries(tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    users.write_text("bob:$apr1$abc$def\n")
    with pytest.raises(ValueError, match="htpasswd -B"):
        read_htpasswd(str(users))


async def test_allow_and_deny_use_the_client_address() -> None:
    async with backend() as target, running_proxy() as proxy:
        proxy.set_app("a", ["a"], [target], policy=Policy(allow=("10.0.0.0/8",)))
        proxy.set_app("b", ["b"], [target], policy=Policy(allow=("127.0.0.0/8",), deny=("127.0.0.2",)))
        proxy.set_app("c", ["c"], [target], policy=Policy(deny=("127.0.0.1",)))
        assert (await get(proxy.port, host="a"))[0] == 403
        assert (await get(proxy.port, host="b"))[0] == 200
        assert (await get(proxy.port, host="c"))[0] == 403
        # the client's own X-Forwarded-For is not believed from an untrusted peer
        assert (await get(proxy.port, host="c", headers={"X-Forwarded-For": "10.1.1.1"}))[0] == 403


async def test_allow_and_deny_behind_trusted_proxies_use_the_forwarded_client() -> None:
    async with backend() as target, running_proxy(trusted_proxies=("127.0.0.1",)) as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(allow=("203.0.113.0/24",), deny=("203.0.113.66",)))
        assert (await get(proxy.port, headers={"X-Forwarded-For": "203.0.113.9"}))[0] == 200
        assert (await get(proxy.port, headers={"X-Forwarded-For": "203.0.113.66"}))[0] == 403
        assert (await get(proxy.port, headers={"X-Forwarded-For": "198.51.100.1"}))[0] == 403
        assert (await get(proxy.port))[0] == 403  # the trusted proxy itself is not allowed


async def test_response_and_request_headers_and_the_security_preset() -> None:
    async def framed(request: web.Request) -> web.Response:
        return web.Response(text="x", headers={"X-Frame-Options": "ALLOWALL", "X-App": "1"})

    policy = Policy(headers=(("X-Frame-Options", "DENY"), ("X-Extra", "yes")), request_headers=(("X-Tenant", "t1"),),
                    security_headers=True)
    async with backend([("GET", "/framed", framed)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=policy)
        status, headers, _ = await get(proxy.port, "/framed")
        assert status == 200
        assert headers["x-frame-options"] == "DENY" and headers["x-extra"] == "yes" and headers["x-app"] == "1"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "strict-transport-security" not in headers  # plain http
        raw = await raw_request(proxy.port, b"GET /framed HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert raw.lower().count(b"x-frame-options") == 1
        doc = seen((await get(proxy.port, "/", headers={"X-Tenant": "forged"}))[2])
        assert doc["headers"]["x-tenant"] == "t1"
        proxy.set_app("a", ["h"], [], policy=policy)  # the proxy's own error pages carry them too
        status, headers, _ = await get(proxy.port, "/")
        assert status == 503 and headers["x-frame-options"] == "DENY"


async def post_status(port: int, host: str, size: int, *, chunked: bool = False) -> int:
    """POST `size` bytes to `host`, with a Content-Length or chunked (16 KiB chunks)."""
    if not chunked:
        raw = await raw_request(port, b"POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                % (host.encode(), size, b"x" * size))
        return parse_response(raw)[0]
    parts = [b"POST /echo HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % host.encode()]
    for start in range(0, size, 16384):
        n = min(16384, size - start)
        parts.append(b"%x\r\n%s\r\n" % (n, b"y" * n))
    parts.append(b"0\r\n\r\n")
    return parse_response(await raw_request(port, b"".join(parts)))[0]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("buffer", [True, False], ids=["buffered", "streamed"])
async def test_per_app_max_body_size_below_and_above_the_proxys(chunked: bool, buffer: bool) -> None:
    """The routed app's limit holds, lower or higher than [proxy] max_body_size (1000 here),
    which stays the limit of apps without one; and of an unknown host (404 is not reached)."""
    async with backend([("POST", "/echo", body_echo)]) as target, running_proxy(max_body_size=1000) as proxy:
        proxy.set_app("low", ["low"], [target], policy=Policy(max_body_size=100, buffer_requests=buffer))
        proxy.set_app("high", ["high"], [target], policy=Policy(max_body_size=100_000, buffer_requests=buffer))
        proxy.set_app("free", ["free"], [target], policy=Policy(max_body_size=0, buffer_requests=buffer))
        proxy.set_app("plain", ["plain"], [target], policy=Policy(buffer_requests=buffer))
        proxy.set_app("bare", ["bare"], [target])  # no policy at all
        sizes = {"low": (100, 101), "high": (100_000, 100_001), "plain": (1000, 1001), "bare": (1000, 1001),
                 "free": (200_000, None), "nobody": (None, 1001)}
        for host, (fits, too_big) in sizes.items():
            if fits is not None:
                assert await post_status(proxy.port, host, fits, chunked=chunked) == 200, host
            if too_big is not None:
                assert await post_status(proxy.port, host, too_big, chunked=chunked) == 413, host


async def test_per_app_upstream_response_timeout() -> None:
    async with silent_backend() as (target, _, _), running_proxy(**FINE_SWEEP) as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(upstream_response_timeout=0.3))
        t0 = time.monotonic()
        assert (await get(proxy.port))[0] == 504
        assert time.monotonic() - t0 < 2.0


async def test_per_app_client_body_timeout_while_buffering() -> None:
    async with backend() as target, running_proxy(**FINE_SWEEP) as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(client_body_timeout=0.3))
        t0 = time.monotonic()
        raw = await raw_request(proxy.port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        assert parse_response(raw)[0] == 408
        assert time.monotonic() - t0 < 2.0


async def body_echo(request: web.Request) -> web.Response:
    data = await request.read()
    return web.json_response({"size": len(data), "chunked": "Transfer-Encoding" in request.headers,
                              "length": request.headers.get("Content-Length"),
                              "expect": request.headers.get("Expect")})


async def test_buffered_bodies_arrive_whole_with_a_content_length() -> None:
    async with backend([("POST", "/echo", body_echo)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(request_buffer_memory=1024))
        raw = await raw_request(proxy.port, b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                            b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        status, _, body = parse_response(raw)
        assert status == 200
        assert json.loads(body.split(b"\r\n", 1)[-1] if body[:1] != b"{" else body) == {
            "size": 11, "chunked": False, "length": "11", "expect": None}
        async with aiohttp.ClientSession() as s:  # above request_buffer_memory: a temporary file
            data = os.urandom(300_000)
            async with s.post(f"http://127.0.0.1:{proxy.port}/echo", data=data, headers={"Host": "h"}) as r:
                assert (await r.json())["size"] == 300_000


@pytest.mark.parametrize("size", [11, 300_000], ids=["in-memory", "in-a-file"])
async def test_a_buffered_body_is_replayed_when_the_first_target_refuses(size: int, caplog: pytest.LogCaptureFixture) -> None:
    """buffer_requests: the body is the proxy's, so a connect failure is retried on another
    target with the whole body (memory or file), chunked or not, for any method."""
    caplog.set_level(logging.INFO, "dockyard.proxy")
    data = os.urandom(size)
    async with backend([("POST", "/echo", body_echo)]) as target, running_proxy() as proxy:
        refused = f"127.0.0.1:{free_port()}"
        proxy.set_app("a", ["h"], [refused, target], policy=Policy(request_buffer_memory=1024))
        for i in range(4):  # round robin: the refusing target comes first at least twice
            chunked = i % 2 == 1
            framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (size, data) if chunked else data
            raw = await raw_request(proxy.port, b"POST /echo HTTP/1.1\r\nHost: h\r\n%s\r\nConnection: close\r\n\r\n%s"
                                    % (framing, body))
            status, _, answer = parse_response(raw)
            assert status == 200, answer
            assert json.loads(answer)["size"] == size
        retried = [r for r in caplog.records if r.getMessage().startswith(f"Retrying request target={refused}")]
        assert len(retried) >= 2


async def test_a_buffered_idempotent_request_is_replayed_after_a_reset_before_any_answer(
        caplog: pytest.LogCaptureFixture) -> None:
    """A PUT whose buffered body reached a target that reset before answering is sent whole to
    another, as a GET would be; a POST is not (the app may have acted on it): 502."""
    caplog.set_level(logging.INFO, "dockyard.proxy")
    data = os.urandom(300_000)
    async with raw_backend(lambda head: None) as (resetting, heads), backend([("*", "/echo", body_echo)]) as target, \
            running_proxy() as proxy:
        proxy.set_app("a", ["h"], [resetting, target], policy=Policy(request_buffer_memory=1024))
        hit = {"PUT": 0, "POST": 0}  # requests that met the resetting target first
        for method in ("PUT", "POST") * 4:  # round robin: each meets it at least once
            before = len(heads)
            raw = await raw_request(proxy.port, b"%s /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
                                    b"Connection: close\r\n\r\n%s" % (method.encode(), len(data), data))
            status, _, answer = parse_response(raw)
            reset = len(heads) > before
            hit[method] += reset
            if method == "POST" and reset:
                assert status == 502
            else:
                assert status == 200 and json.loads(answer)["size"] == len(data), (method, status)
        assert hit["PUT"] >= 1 and hit["POST"] >= 1
        retried = [r for r in caplog.records if r.getMessage().startswith(f"Retrying request target={resetting}")]
        assert len(retried) == hit["PUT"]


async def test_expect_100_continue_is_answered_by_the_proxy_when_buffering() -> None:
    async with backend([("POST", "/echo", body_echo)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy())
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(3):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"hello")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = int(parse_response(head)[1]["content-length"])
            doc = json.loads(await reader.readexactly(length))
        assert doc["size"] == 5 and doc["expect"] is None
        writer.close()


async def test_websockets_work_with_a_policy() -> None:
    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str("echo:" + msg.data)
        return sock

    async with backend([("GET", "/ws", ws)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(headers=(("X-A", "1"),), security_headers=True))
        async with aiohttp.ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws",
                                                              headers={"Host": "h"}) as sock:
            await sock.send_str("hi")
            assert await sock.receive_str() == "echo:hi"


async def test_a_buffered_1gib_upload_grows_the_proxys_rss_by_less_than_32mb() -> None:
    """Issue #21's bound, on the proxy alone: it runs in its own process (bench's launcher, the
    default policy, so the upload is buffered: 1 MiB in memory, the rest in a temporary file),
    and its peak RSS during a 1 GiB upload (VmHWM, reset just before) stays within 32 MiB of
    its RSS before. `python -m bench.memory --policy '{}'` gives the same figure with figures."""
    from bench.memory import reset_peak, rss_kb, upload
    from bench.throughput import start_ours, stop, wait_port

    size = 1 << 30
    got: list[int] = []

    async def sink(request: web.Request) -> web.Response:
        n = 0
        async for chunk in request.content.iter_any():
            n += len(chunk)
        got.append(n)
        return web.Response(text=str(n))

    async with backend([("POST", "/sink", sink)]) as target:
        port = free_port()
        child = start_ours(port, int(target.rsplit(":", 1)[1]), policy="{}")
        try:
            await asyncio.to_thread(wait_port, port)
            assert await upload(port, 1 << 20) == 1 << 20  # warm: imports, pools, the first spool
            before = rss_kb(child.pid)
            reset_peak(child.pid)
            assert await upload(port, size) == size
            peak_rise_mib = (rss_kb(child.pid, "VmHWM") - before) / 1024
        finally:
            stop(child)
    assert got == [1 << 20, size]  # the app saw each body once, whole
    assert peak_rise_mib < 32, f"the proxy's peak RSS rose by {peak_rise_mib:.1f} MiB"


class OneWorkerApp:
    """A sync app with one worker, as gunicorn -w 1 (sync): one connection at a time, whole
    request read (Content-Length), answered, connection closed; others wait in the backlog."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self.lock:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def slow_body_blocks_others(buffer: bool) -> bool:
    """A client sends its body slowly (a pause between bytes); does another client still get answered?"""
    async with OneWorkerApp() as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(buffer_requests=buffer))
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n")
        writer.write(b"a")
        await asyncio.sleep(0.2)  # the app (unbuffered) is now in the middle of reading this body
        writer.write(b"b")
        try:
            async with asyncio.timeout(1.0):  # a free app answers in milliseconds
                status = (await get(proxy.port))[0]
            blocked = status != 200
        except TimeoutError:
            blocked = True
        writer.write(b"cd")  # the slow client finishes and is answered too
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.close()
        return blocked


async def test_a_slow_body_does_not_hold_a_one_worker_app_when_buffering() -> None:
    assert not await slow_body_blocks_others(buffer=True)


async def test_a_slow_body_holds_a_one_worker_app_without_buffering() -> None:
    assert await slow_body_blocks_others(buffer=False)


async def test_an_invalid_policy_is_refused() -> None:
    from proxy import InvalidRouteError

    async with running_proxy() as proxy:
        with pytest.raises(InvalidRouteError, match="allow"):
            proxy.set_app("a", ["h"], ["127.0.0.1:1"], policy=Policy(allow=("10.0.0.0/33",)))
        with pytest.raises(InvalidRouteError, match="status"):
            proxy.set_app("a", ["h"], ["127.0.0.1:1"], policy=Policy(redirects=(Redirect("/a", "/b", 303),)))


def test_spool_keeps_small_bodies_in_memory_and_spills_to_a_private_unlinked_file() -> None:
    import stat

    from proxy.policy_buffer import Spool

    spool = Spool(memory=10)
    spool.write(b"12345")
    assert spool.file is None
    spool.write(b"678901")
    assert spool.file is not None
    st = os.fstat(spool.file.fileno())
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 0  # 0600, and no name on disk
    assert b"".join(spool.chunks()) == b"12345678901"
    assert b"".join(spool.chunks()) == b"12345678901"  # again: a retry replays it whole
    spool.close()
    assert spool.file is None


# -- compression ----------------------------------------------------------------------------------
BIG_TEXT = ("hello compressible world " * 400).encode()


async def text(request: web.Request) -> web.Response:
    return web.Response(body=BIG_TEXT, content_type="text/plain", headers={"ETag": '"v1"', "Vary": "Cookie"})


async def png(request: web.Request) -> web.Response:
    return web.Response(body=BIG_TEXT, content_type="image/png")


async def tiny(request: web.Request) -> web.Response:
    return web.Response(text="small", content_type="text/plain")


async def encoded(request: web.Request) -> web.Response:
    import gzip

    return web.Response(body=gzip.compress(BIG_TEXT), content_type="text/plain", headers={"Content-Encoding": "gzip"})


async def raw_get(port: int, path: str, accept: str) -> tuple[int, dict[str, str], bytes]:
    raw = await raw_request(port, f"GET {path} HTTP/1.1\r\nHost: h\r\nAccept-Encoding: {accept}\r\n"
                                  f"Connection: close\r\n\r\n".encode())
    status, headers, body = parse_response(raw)
    if headers.get("transfer-encoding") == "chunked":
        out = b""
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            out += body[:size]
            body = body[size + 2:]
        body = out
    return status, headers, body


COMPRESS_ROUTES = [("GET", "/text", text), ("GET", "/png", png), ("GET", "/tiny", tiny), ("GET", "/encoded", encoded)]


async def test_compress_by_default_gzip_br_zstd_with_vary_and_a_weak_etag() -> None:
    import gzip

    async with backend(COMPRESS_ROUTES) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy())  # the default: compress on
        status, headers, body = await raw_get(proxy.port, "/text", "gzip")
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert gzip.decompress(body) == BIG_TEXT and len(body) < len(BIG_TEXT) // 10
        assert headers["vary"] == "Cookie, Accept-Encoding" and headers["etag"] == 'W/"v1"'
        assert "content-length" not in headers
        status, headers, body = await raw_get(proxy.port, "/text", "gzip;q=0.5, br")
        import brotli
        assert headers["content-encoding"] == "br" and brotli.decompress(body) == BIG_TEXT
        status, headers, body = await raw_get(proxy.port, "/text", "gzip, br, zstd")
        import zstandard
        assert headers["content-encoding"] == "zstd"
        assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == BIG_TEXT
        for path, accept in (("/text", "identity"), ("/text", "gzip;q=0"), ("/png", "gzip"), ("/tiny", "gzip")):
            status, headers, body = await raw_get(proxy.port, path, accept)
            assert "content-encoding" not in headers, (path, accept)
            assert body in (BIG_TEXT, b"small")
        # Not compressed for this client, compressible for another: caches are told (gzip_vary).
        raw = await raw_request(proxy.port, b"GET /text HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert b"Vary: Cookie" in head and b"Vary: Accept-Encoding" in head and b'ETag: "v1"' in head
        raw = await raw_request(proxy.port, b"GET /png HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert b"accept-encoding" not in raw.split(b"\r\n\r\n", 1)[0].lower()
        status, headers, body = await raw_get(proxy.port, "/encoded", "gzip")
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == BIG_TEXT  # not twice
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{proxy.port}/text",
                                                       headers={"Host": "h"}) as r:  # aiohttp decodes
            assert await r.read() == BIG_TEXT


async def test_compress_false_sends_the_apps_bytes_and_headers() -> None:
    async with backend(COMPRESS_ROUTES) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(compress=False))
        status, headers, body = await raw_get(proxy.port, "/text", "gzip, br, zstd")
        assert status == 200 and body == BIG_TEXT and "content-encoding" not in headers
        assert headers["content-length"] == str(len(BIG_TEXT))
        assert headers["etag"] == '"v1"' and headers["vary"] == "Cookie"


async def test_compression_on_the_callback_fast_path() -> None:
    """A GET of an app with the default policy and a pooled upstream connection is forwarded
    from callbacks (no task): compressed there too, on each request of a keep-alive client."""
    async with backend(COMPRESS_ROUTES) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy())
        assert not proxy.table.services["a"].steps.every_request  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.get(f"http://127.0.0.1:{proxy.port}/text",
                                 headers={"Host": "h", "Accept-Encoding": "gzip"}) as r:
                    assert r.headers["Content-Encoding"] == "gzip" and r.headers["ETag"] == 'W/"v1"'
                    assert await r.read() == BIG_TEXT  # aiohttp decodes


def decoder(coding: str) -> Any:
    """An incremental decoder: bytes in, what they decode to out."""
    import zlib

    if coding == "gzip":
        return zlib.decompressobj(31).decompress
    if coding == "br":
        import brotli

        return brotli.Decompressor().process
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_compressed_event_streams_go_out_event_by_event(coding: str) -> None:
    """Every event the app writes is compressed and flushed on its own: the client decodes it
    before the app has written the next (no encoder or response buffer holds it back)."""
    release = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: one\n\n")
        await release.wait()
        await resp.write(b"data: two\n\n")
        await resp.write_eof()
        return resp

    async with backend([("GET", "/events", events)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(buffer_responses=True))  # SSE never buffered
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"GET /events HTTP/1.1\r\nHost: h\r\nAccept-Encoding: {coding}\r\n\r\n".encode())
        decode = decoder(coding)

        async def next_event() -> bytes:
            text = b""
            while not text.endswith(b"\n\n"):
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                assert size, "the stream ended before the event"
                text += decode((await reader.readexactly(size + 2))[:-2])
            return text

        async with asyncio.timeout(3):
            head = parse_response(await reader.readuntil(b"\r\n\r\n"))[1]
            assert head["content-encoding"] == coding and head["vary"] == "Accept-Encoding"
            assert await next_event() == b"data: one\n\n"  # before the second exists
            release.set()
            assert await next_event() == b"data: two\n\n"
        writer.close()


# -- response buffering ---------------------------------------------------------------------------
async def app_freed_before_the_client_reads(buffer: bool, content_type: str = "application/octet-stream") -> bool:
    """A 48 MiB response to a client that reads nothing yet: does the app's handler finish?"""
    import socket

    size = 48 << 20
    finished = asyncio.Event()

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        resp.content_length = size
        await resp.prepare(request)
        block = b"r" * (1 << 20)
        for _ in range(size >> 20):
            await resp.write(block)
        finished.set()
        return resp

    async with backend([("GET", "/big", big)]) as target, running_proxy() as proxy:
        proxy.set_app("a", ["h"], [target], policy=Policy(buffer_responses=buffer))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", proxy.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        writer.write(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        try:
            # Buffered, the app is done within ~0.05 s here; unbuffered, it stays stuck after
            # ~9 MiB (what the sockets on the way hold), so 48 MiB is far past either. 1 s is
            # twenty times what buffering needs.
            async with asyncio.timeout(1.0):
                await finished.wait()
            freed = True
        except TimeoutError:
            freed = False
        async with asyncio.timeout(30):  # then the client reads it all, intact
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % size in head
            got = 0
            while got < size:
                chunk = await reader.read(1 << 20)
                assert chunk and set(chunk) == {ord("r")}
                got += len(chunk)
        writer.close()
        return freed


async def test_buffer_responses_frees_the_app_before_a_slow_reader_has_read() -> None:
    assert await app_freed_before_the_client_reads(buffer=True)


async def test_without_buffer_responses_a_slow_reader_holds_the_app() -> None:
    assert not await app_freed_before_the_client_reads(buffer=False)


async def test_event_streams_are_never_buffered() -> None:
    assert not await app_freed_before_the_client_reads(buffer=True, content_type="text/event-stream")


def test_response_buffer_is_first_in_first_out_across_memory_and_file() -> None:
    from proxy.policy_buffer import ResponseBuffer

    rb = ResponseBuffer(memory=4)
    for piece in (b"ab", b"cd", b"ef", b"gh"):
        rb.write(piece)
    assert rb.file is not None and rb.size == 8
    assert rb.read() == b"ab"
    rb.write(b"ij")  # memory has room again, but the file is not empty: after it
    assert b"".join(iter(rb.read, b"")) == b"cdefghij"
    assert rb.size == 0
    rb.write(b"kl")
    assert rb.read() == b"kl"
    rb.close()


def test_a_canonical_host_with_a_line_break_is_refused() -> None:
    assert [k for k, _ in Policy(canonical_host="a.test\r\nX: y").validate()] == ["canonical_host"]
    assert Policy(canonical_host="a.test:8443").validate() == []
