"""security_headers on TLS (issue #21): HSTS on https responses only, unless the app sets hsts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from proxy import Proxy, ProxyOptions
from proxy.policy import Policy
from proxy.tls import CertStore
from tests.proxy.utils import TEARDOWN_GRACE, backend

from .utils import client_context, request, write_pair


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def proxy(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Proxy]:
    p = Proxy(ProxyOptions())
    await p.start("127.0.0.1", 0)
    store = CertStore()
    store.install("a", ["a.test", "b.test"], *write_pair(ca, tmp_path, "a", "a.test", "b.test"))
    await p.start_tls("127.0.0.1", 0, store)
    yield p
    await p.stop(TEARDOWN_GRACE)


async def test_security_headers_add_hsts_on_tls_only(proxy: Proxy, ca: trustme.CA) -> None:
    async with backend() as target:
        proxy.set_app("a", ["a.test"], [target], policy=Policy(security_headers=True))
        proxy.set_app("b", ["b.test"], [target], hsts=60, policy=Policy(security_headers=True))
        tls = await request(proxy.tls_port, "a.test", tls=client_context(ca))
        assert tls.status == 200
        assert tls.headers["strict-transport-security"] == "max-age=31536000"
        assert tls.headers["x-content-type-options"] == "nosniff"
        plain = await request(proxy.port, "a.test")
        assert "strict-transport-security" not in plain.headers
        assert plain.headers["x-content-type-options"] == "nosniff"
        own = await request(proxy.tls_port, "b.test", tls=client_context(ca))  # the app's hsts wins
        assert own.headers["strict-transport-security"] == "max-age=60"
