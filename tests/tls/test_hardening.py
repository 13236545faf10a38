"""TLS hardening (issue #17 item 15): AEAD-only TLS 1.2 suites, no renegotiation, HSTS on error pages."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from proxy import Proxy, ProxyOptions
from proxy.tls import CertStore
from tests.proxy.utils import TEARDOWN_GRACE

from .utils import client_context, request, write_pair


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def proxy(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Proxy]:
    p = Proxy(ProxyOptions(upstream_connect_timeout=0.5, upstream_response_timeout=5.0))
    await p.start("127.0.0.1", 0)
    store = CertStore()
    store.install("a", ["a.test"], *write_pair(ca, tmp_path, "a", "a.test"))
    await p.start_tls("127.0.0.1", 0, store)
    yield p
    await p.stop(TEARDOWN_GRACE)


def tls12(ca: trustme.CA, ciphers: str) -> ssl.SSLContext:
    ctx = client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    return ctx


async def handshake(port: int, ctx: ssl.SSLContext) -> str:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="a.test")
    cipher = writer.get_extra_info("cipher")[0]
    writer.close()
    return str(cipher)


async def test_tls12_cbc_suites_are_refused_and_aead_ones_negotiate(proxy: Proxy, ca: trustme.CA) -> None:
    for cbc in ("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384",
                "AES128-SHA:AES256-SHA256"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(proxy.tls_port, tls12(ca, cbc))
    assert "GCM" in await handshake(proxy.tls_port, tls12(ca, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"))


async def test_renegotiation_is_disabled_on_every_context(ca: trustme.CA, tmp_path: Path) -> None:
    store = CertStore()
    store.install("a", ["a.test"], *write_pair(ca, tmp_path, "a", "a.test"))
    entry = store.entry("a")
    assert entry is not None
    for ctx in (store.listener_context(), entry.context):
        assert ctx.options & ssl.OP_NO_RENEGOTIATION


async def test_the_proxys_own_error_pages_carry_hsts_over_tls(proxy: Proxy, ca: trustme.CA) -> None:
    proxy.set_app("a", ["a.test"], [], hsts=600)  # no targets: the proxy answers 503 itself
    reply = await request(proxy.tls_port, "a.test", tls=client_context(ca))
    assert reply.status == 503
    assert reply.headers["strict-transport-security"] == "max-age=600"
    plain = await request(proxy.port, "a.test")
    assert plain.status == 503 and "strict-transport-security" not in plain.headers
