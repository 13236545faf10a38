"""ACME against pebble: the whole HTTP-01 flow through our proxy, renewal, a failed renewal."""

from __future__ import annotations

import asyncio
import ssl
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from proxy import Proxy, ProxyOptions
from proxy.tls import CertStore
from supervisor.tls.acme import AcmeManager
from tests.proxy.utils import TEARDOWN_GRACE

from .pebble import pebble, require_pebble
from .utils import request, sans

HOST = "web.example.com"


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acme library polls an order's authorizations and its finalization with a fixed
    time.sleep(1) (no option); pebble is done in milliseconds, so each issuance spent ~2 s
    asleep. Here its polls are 50 ms apart: the same requests to the same real CA, only sooner."""
    import acme.client

    monkeypatch.setattr(acme.client, "time", SimpleNamespace(sleep=lambda s: time.sleep(min(s, 0.05))))


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[Proxy, CertStore]]:
    require_pebble()
    p = Proxy(ProxyOptions())
    await p.start("127.0.0.1", 0)
    store = CertStore()
    await p.start_tls("127.0.0.1", 0, store)
    yield p, store
    await p.stop(TEARDOWN_GRACE)


def manager(p: Proxy, store: CertStore, directory: str, ca: str, tmp: Path, **kw: Any) -> AcmeManager:
    assert p.edge is not None
    return AcmeManager(directory=directory, email="ops@example.com", certs_dir=tmp / "certs", store=store,
                       edge=p.edge, ca_bundle=ca, retry_min=30.0, **kw)


async def until(check: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def served_serial(p: Proxy) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # pebble's roots are made per run; we check names and serials
    reader, writer = await asyncio.open_connection("127.0.0.1", p.tls_port, ssl=ctx, server_hostname=HOST)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == [HOST]
    return format(cert.serial_number, "x")


async def test_issue_through_http01_then_restart_uses_the_file(proxy, tmp_path: Path) -> None:
    p, store = proxy
    with pebble(tmp_path, p.port) as server:
        m = manager(p, store, server.directory, server.ca_bundle, tmp_path)
        m.start({"web": (HOST,)})
        try:
            await until(lambda: m.status()["web"]["state"] != "pending")
            status = m.status()["web"]
            assert status["state"] == "valid", status
            assert p.edge is not None and p.edge.challenges == {}  # tokens removed after the order
        finally:
            await m.close()
        serial = await served_serial(p)
        for name in ("account.key", "web.key", "web.crt"):
            assert stat.S_IMODE((tmp_path / "certs" / name).stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "certs").stat().st_mode) == 0o700
        # a restarted daemon: a second proxy and manager serve the file without ordering
        store2 = CertStore()
        m2 = manager(p, store2, server.directory, server.ca_bundle, tmp_path)
        m2.start({"web": (HOST,)})
        await m2.close()
        assert m2.status()["web"]["state"] == "valid" and m2.status()["web"]["renewed_at"] is None
        assert store2.entry("web") is not None
    assert serial


async def test_renewal_replaces_the_certificate(proxy, tmp_path: Path) -> None:
    p, store = proxy
    with pebble(tmp_path, p.port) as server:
        # renew_days beyond the certificate's lifetime: due at once, limited by min_gap
        m = manager(p, store, server.directory, server.ca_bundle, tmp_path, renew_days=100000, min_gap=0.5)
        m.start({"web": (HOST,)})
        try:
            await until(lambda: m.status()["web"]["renewed_at"] is not None)
            first = await served_serial(p)
            renewed = m.status()["web"]["renewed_at"]
            await until(lambda: m.status()["web"]["renewed_at"] != renewed)  # APScheduler's renewal
            assert m.status()["web"]["state"] == "valid"
            assert await served_serial(p) != first
        finally:
            await m.close()


async def test_failed_renewal_keeps_the_old_certificate(proxy, tmp_path: Path, caplog) -> None:
    p, store = proxy
    with pebble(tmp_path, p.port) as server:
        m = manager(p, store, server.directory, server.ca_bundle, tmp_path)
        m.start({"web": (HOST,)})
        try:
            await until(lambda: m.status()["web"]["state"] == "valid")
            before = await served_serial(p)
            server.stop()  # the CA goes away
            assert await m.renew("web") is False
        finally:
            await m.close()
    status = m.status()["web"]
    assert status["state"] == "renewal-failed" and status["failures"] == 1
    assert status["last_error"] and status["next_attempt"]
    assert "Ordering certificate failed app=web" in caplog.text
    assert await served_serial(p) == before
    ok = await request(p.tls_port, HOST, tls=_loose())
    assert ok.status == 404 and sans(ok.peer) == []  # served (unverified peer: no parsed cert)


def _loose() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
