"""`dockyard reload` and TLS: certificates follow the config without a restart."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from proxy import Proxy, ProxyOptions
from supervisor.config.loader import parse_config
from supervisor.deploy.reconcile import plan
from supervisor.tls.service import start_tls
from tests.proxy.utils import TEARDOWN_GRACE

from .utils import client_context, write_pair


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path, port: int, apps: dict[str, Any]) -> Any:
    data = {"server": {"listen": "127.0.0.1:8080", "tls_listen": f"127.0.0.1:{port}",
                       "state_dir": str(tmp_path / "state")}, "apps": apps}
    return parse_config(data, tmp_path / "dockyard.toml")


async def serial(port: int, host: str, ca: trustme.CA) -> int:
    import asyncio

    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname=host
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    from cryptography import x509

    return int(x509.load_der_x509_certificate(der).serial_number)


async def test_reload_swaps_rotated_and_removed_certificates(tmp_path: Path) -> None:
    ca = trustme.CA()
    crt1, key1 = write_pair(ca, tmp_path, "one", "a.test")
    crt2, key2 = write_pair(ca, tmp_path, "two", "a.test")
    port = free_port()
    app = {"image": "x:1", "hosts": ["a.test"], "tls": "manual", "tls_cert": crt1, "tls_key": key1}
    old = config(tmp_path, port, {"a": app})
    proxy = Proxy(ProxyOptions())
    await proxy.start("127.0.0.1", 0)
    tls = await start_tls(old, proxy)
    assert tls is not None
    try:
        first = await serial(port, "a.test", ca)
        rotated = config(tmp_path, port, {"a": {**app, "tls_cert": crt2, "tls_key": key2}})
        assert plan(old, rotated).rerouted == ("a",) and plan(old, rotated).changed == ()
        tls.apply(rotated)
        second = await serial(port, "a.test", ca)
        assert second != first
        off = config(tmp_path, port, {"a": {"image": "x:1", "hosts": ["a.test"]}})
        tls.apply(off)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await serial(port, "a.test", ca)
        # The listener kept serving: the certificate comes back with the next reload.
        tls.apply(rotated)
        assert await serial(port, "a.test", ca) == second
    finally:
        await tls.close()
        await proxy.stop(TEARDOWN_GRACE)
