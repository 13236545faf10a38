"""Manual certificates (made by trustme): SNI selection, swaps, redirect, HSTS, X-Forwarded-Proto."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from proxy import Proxy, ProxyOptions
from proxy.tls import CertStore
from tests.proxy.utils import TEARDOWN_GRACE, backend

from .utils import client_context, request, sans, write_pair


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pairs(ca: trustme.CA, tmp_path: Path) -> dict[str, tuple[str, str]]:
    return {
        "a": write_pair(ca, tmp_path, "a", "a.test"),
        "b": write_pair(ca, tmp_path, "b", "b.test", "www.b.test"),
        "wild": write_pair(ca, tmp_path, "wild", "*.wild.test"),
        "a2": write_pair(ca, tmp_path, "a2", "a.test"),
    }


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy(ProxyOptions(upstream_connect_timeout=0.5, upstream_response_timeout=5.0))
    await p.start("127.0.0.1", 0)
    yield p
    await p.stop(TEARDOWN_GRACE)


async def start(proxy: Proxy, pairs: dict[str, tuple[str, str]], default: str | None = None) -> CertStore:
    store = CertStore(default=default)
    store.install("a", ["a.test"], *pairs["a"])
    store.install("b", ["b.test", "www.b.test"], *pairs["b"])
    store.install("wild", ["*.wild.test"], *pairs["wild"])
    await proxy.start_tls("127.0.0.1", 0, store)
    return store


async def test_sni_picks_the_certificate_per_host(proxy: Proxy, pairs, ca) -> None:
    await start(proxy, pairs)
    async with backend() as target:
        proxy.set_app("a", ["a.test"], [target])
        proxy.set_app("b", ["b.test", "www.b.test"], [target])
        tls = client_context(ca)
        a = await request(proxy.tls_port, "a.test", tls=tls)
        b = await request(proxy.tls_port, "www.b.test", tls=tls)
        w = await request(proxy.tls_port, "x.wild.test", tls=tls)
    assert sans(a.peer) == ["a.test"] and a.status == 200
    assert sans(b.peer) == ["b.test", "www.b.test"] and b.status == 200
    assert sans(w.peer) == ["*.wild.test"] and w.status == 404  # no app routed there


async def test_x_forwarded_proto_https_reaches_the_backend(proxy: Proxy, pairs, ca) -> None:
    await start(proxy, pairs)
    async with backend() as target:
        proxy.set_app("a", ["a.test"], [target])
        over_tls = await request(proxy.tls_port, "a.test", tls=client_context(ca))
        plain = await request(proxy.port, "a.test")
    proto = {json.loads(r.body)["headers"][i][1] for r in (over_tls,) for i, h in
             enumerate(json.loads(r.body)["headers"]) if h[0] == "X-Forwarded-Proto"}
    assert proto == {"https"}
    assert ["X-Forwarded-Proto", "http"] in json.loads(plain.body)["headers"]


async def test_unknown_sni_fails_the_handshake_cleanly_and_the_server_keeps_serving(proxy: Proxy, pairs, ca) -> None:
    store = await start(proxy, pairs)
    tls = client_context(ca)
    with pytest.raises((ssl.SSLError, ConnectionError)):  # an alert, or a reset right after it
        await request(proxy.tls_port, "nobody.test", tls=tls)
    no_sni = client_context(ca)
    no_sni.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await request(proxy.tls_port, "a.test", tls=no_sni, sni="127.0.0.1")  # IP: no SNI sent
    assert store.refused >= 2
    ok = await request(proxy.tls_port, "a.test", tls=tls)
    assert sans(ok.peer) == ["a.test"]


async def test_unknown_sni_gets_the_default_certificate(proxy: Proxy, pairs, ca) -> None:
    await start(proxy, pairs, default="b")
    loose = client_context(ca)
    loose.check_hostname = False
    reply = await request(proxy.tls_port, "nobody.test", tls=loose)
    assert sans(reply.peer) == ["b.test", "www.b.test"]
    assert reply.status == 404


async def test_swap_keeps_established_connections(proxy: Proxy, pairs, ca, tmp_path: Path) -> None:
    store = await start(proxy, pairs)
    async with backend() as target:
        proxy.set_app("a", ["a.test"], [target])
        tls = client_context(ca)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.tls_port, ssl=tls, server_hostname="a.test")
        old_serial = writer.get_extra_info("ssl_object").getpeercert()["serialNumber"]
        store.install("a", ["a.test"], *pairs["a2"])  # a renewal
        with pytest.raises((ssl.SSLError, OSError)):
            store.install("a", ["a.test"], pairs["b"][0], pairs["a"][1])  # key mismatch: refused
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"HTTP/1.1 200")
        writer.close()
        fresh = await request(proxy.tls_port, "a.test", tls=tls)
    assert fresh.peer is not None and fresh.peer["serialNumber"] != old_serial
    assert store.entry("a") is not None and store.entry("a").certfile == pairs["a2"][0]  # type: ignore[union-attr]


async def test_redirect_with_challenge_path_exempt(proxy: Proxy, pairs, ca) -> None:
    await start(proxy, pairs)
    async with backend() as target:
        proxy.set_app("a", ["a.test"], [target], tls_redirect=True)
        proxy.set_app("b", ["b.test"], [target])
        assert proxy.edge is not None
        proxy.edge.challenges["tok123"] = "tok123.thumb"
        moved = await request(proxy.port, "A.test:80", "/x/y?q=1")
        head = await request(proxy.port, "a.test", "/x", method="HEAD")
        challenge = await request(proxy.port, "a.test", "/.well-known/acme-challenge/tok123")
        unknown = await request(proxy.port, "a.test", "/.well-known/acme-challenge/nope")
        plain_b = await request(proxy.port, "b.test", "/")
        over_tls = await request(proxy.tls_port, "a.test", "/x", tls=client_context(ca))
    assert moved.status == 308
    assert moved.headers["location"] == f"https://a.test:{proxy.tls_port}/x/y?q=1"
    assert head.status == 308 and head.body == b""
    assert challenge.status == 200 and challenge.body == b"tok123.thumb"
    assert unknown.status == 404
    assert plain_b.status == 200  # no redirect for b
    assert over_tls.status == 200


async def test_redirect_keeps_the_connection_alive(proxy: Proxy, pairs) -> None:
    await start(proxy, pairs)
    proxy.set_app("a", ["a.test"], [], tls_redirect=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for path in ("/one", "/two"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 308") and f"{path}\r\n".encode() in head
    writer.close()


async def test_stop_closes_the_tls_listener_as_it_closes_the_plain_one(pairs, ca) -> None:
    p = Proxy(ProxyOptions())
    await p.start("127.0.0.1", 0)
    await start(p, pairs)
    assert (await request(p.tls_port, "a.test", tls=client_context(ca))).status == 404
    await p.stop(0.5)
    for port in (p.port, p.tls_port):  # nothing listens any more, on either port
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_hsts_only_over_tls(proxy: Proxy, pairs, ca) -> None:
    await start(proxy, pairs)
    async with backend() as target:
        proxy.set_app("a", ["a.test"], [target], hsts=600)
        proxy.set_app("b", ["b.test"], [target])
        a_tls = await request(proxy.tls_port, "a.test", tls=client_context(ca))
        a_plain = await request(proxy.port, "a.test")
        b_tls = await request(proxy.tls_port, "b.test", tls=client_context(ca))
    assert a_tls.headers["strict-transport-security"] == "max-age=600"
    assert "strict-transport-security" not in a_plain.headers
    assert "strict-transport-security" not in b_tls.headers


async def test_garbage_on_the_tls_port_does_not_stop_it(proxy: Proxy, pairs, ca) -> None:
    await start(proxy, pairs)
    for junk in (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b""):
        r, w = await asyncio.open_connection("127.0.0.1", proxy.tls_port)
        w.write(junk)
        w.close()
    ok = await request(proxy.tls_port, "a.test", tls=client_context(ca))
    assert ok.status == 404 and sans(ok.peer) == ["a.test"]


def test_sni_and_refusal_under_uvloop(pairs, ca) -> None:
    """The daemon runs on uvloop, whose SSL layer calls the SNI callback itself."""
    import uvloop

    async def main() -> None:
        p = Proxy(ProxyOptions())
        await p.start("127.0.0.1", 0)
        try:
            await start(p, pairs)
            tls = client_context(ca)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await request(p.tls_port, "nobody.test", tls=tls)
            b = await request(p.tls_port, "b.test", tls=tls)
            assert sans(b.peer) == ["b.test", "www.b.test"] and b.status == 404
        finally:
            await p.stop(TEARDOWN_GRACE)

    uvloop.run(main())
