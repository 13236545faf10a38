"""Issue 18, item 5: a certificate OpenSSL refuses at security level 2 (RSA-1024, SHA-1) is a
validate error; at start or reload it leaves only that app's TLS off, with the reason in status."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from proxy import Proxy
from supervisor.config.certs import check_pair
from supervisor.config.loader import parse_config
from supervisor.model.errors import ConfigError
from supervisor.tls.service import start_tls
from tests.proxy.utils import TEARDOWN_GRACE
from tests.tls.utils import client_context, request, write_pair


def sha1_pair(tmp: Path, name: str, host: str) -> tuple[str, str]:
    """A 2048-bit leaf signed with SHA-1 (cryptography refuses to sign SHA-1: the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to sign with SHA-1")
    crt, key = tmp / f"{name}.crt", tmp / f"{name}.key"

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=weak test CA", "-sha1", "-days", "2")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", "leaf.csr", "-subj", f"/CN={host}")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", str(crt), "-sha1", "-days", "2")
    return str(crt), str(key)


def weak_pair(tmp: Path, name: str, host: str, *, bits: int = 2048, sha1: bool = False) -> tuple[str, str]:
    """A leaf for `host` signed by a fresh 2048-bit CA: `bits` for the leaf key, SHA-1 or SHA-256."""
    if sha1:
        return sha1_pair(tmp, name, host)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    crt, pem = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return str(crt), str(pem)


def free_listen() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy()
    await p.start("127.0.0.1", 0)
    yield p
    await p.stop(TEARDOWN_GRACE)


@pytest.mark.parametrize("bits,sha1", [(1024, False), (2048, True)])
def test_check_pair_refuses_what_the_listener_refuses(tmp_path: Path, bits: int, sha1: bool) -> None:
    found = check_pair(*weak_pair(tmp_path, "w", "w.test", bits=bits, sha1=sha1), ("w.test",))
    assert [k for k, _ in found.errors] == ["tls_cert"]
    assert "security level 2" in found.errors[0][1]


def test_validate_names_the_app_and_key(tmp_path: Path) -> None:
    crt, key = weak_pair(tmp_path, "w", "w.test", bits=1024)
    data = {"server": {"state_dir": str(tmp_path / "s"), "tls_listen": free_listen()},
            "apps": {"w": {"image": "x", "hosts": ["w.test"], "tls": "manual", "tls_cert": crt, "tls_key": key}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, tmp_path / "d.toml")
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{tmp_path / 'd.toml'}: apps.w.tls_cert: ") and "security level 2" in problem


async def test_a_refused_certificate_at_start_and_reload_turns_only_that_apps_tls_off(
    tmp_path: Path, proxy: Proxy
) -> None:
    ca = trustme.CA()
    good = write_pair(ca, tmp_path, "good", "good.test")
    other = write_pair(ca, tmp_path, "other", "bad.test")
    apps = {
        "good": {"image": "x", "hosts": ["good.test"], "tls": "manual", "tls_cert": good[0], "tls_key": good[1]},
        "bad": {"image": "x", "hosts": ["bad.test"], "tls": "manual", "tls_cert": other[0], "tls_key": other[1]},
    }
    config = parse_config({"server": {"state_dir": str(tmp_path / "s"), "tls_listen": free_listen()}, "apps": apps},
                          tmp_path / "d.toml")
    # The files change after validate (a rotation gone wrong): the start must not die of it.
    weak = weak_pair(tmp_path, "weak", "bad.test", bits=1024)
    shutil.copy(weak[0], other[0])
    shutil.copy(weak[1], other[1])
    tls = await start_tls(config, proxy)
    assert tls is not None
    try:
        status = tls.status()
        assert status["bad"]["state"] == "error" and "bad.test" not in str(tls.store.names())
        assert "good" not in status and tls.store.names() == ["good"]
        reply = await request(proxy.tls_port, "good.test", tls=client_context(ca))
        assert reply.status in (404, 502, 503)  # the handshake worked; no backend is behind it
        # Reload: the good app's file goes bad too; the bad one is fixed.
        fixed = write_pair(ca, tmp_path, "fixed", "bad.test")
        shutil.copy(fixed[0], other[0])
        shutil.copy(fixed[1], other[1])
        shutil.copy(weak[0], good[0])
        shutil.copy(weak[1], good[1])
        tls.apply(config)
        assert tls.store.names() == ["bad"] and tls.status()["good"]["state"] == "error"
        assert "bad" not in tls.status()
    finally:
        await tls.close()
