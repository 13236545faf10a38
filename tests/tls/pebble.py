"""Start Debian's `pebble` (Let's Encrypt's ACME test server) on 127.0.0.1 for the tests.

Pebble's HTTP-01 validation must reach our proxy: `httpPort` is the proxy's plain port and
`-dnsserver` points at `pebble-challtestsrv`, whose mock DNS answers 127.0.0.1 for every name.
So the whole flow is real; PEBBLE_VA_ALWAYS_VALID is not used. The Debian package ships no
test certificates, so pebble's own HTTPS certificate comes from a trustme CA.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.conftest import IN_CI

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")


def require_pebble() -> None:
    if PEBBLE and CHALLTESTSRV:
        return
    message = "pebble is not installed (apt-get install -y pebble)"
    if IN_CI:
        pytest.fail(message + "; CI=true requires it")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pebble:
    directory: str
    ca_bundle: str  # trust this for the directory's HTTPS
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_ready(url: str, ca: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    ctx = ssl.create_default_context(cafile=ca)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pebble exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pebble did not answer at {url}: {log.read_text()[-2000:]}")


@contextmanager
def pebble(tmp: Path, http_port: int) -> Iterator[Pebble]:
    """pebble + its mock DNS, validating HTTP-01 against 127.0.0.1:http_port."""
    require_pebble()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp / "pebble.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "pebble.crt"))
    ca.cert_pem.write_to_path(str(tmp / "pebble-ca.pem"))
    port, mgmt, dns, dns_mgmt = free_port(), free_port(), free_port(), free_port()
    (tmp / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}",
        "managementListenAddress": f"127.0.0.1:{mgmt}",
        "certificate": str(tmp / "pebble.crt"),
        "privateKey": str(tmp / "pebble.key"),
        "httpPort": http_port,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    log = tmp / "pebble.log"
    with open(log, "wb") as out:
        dns_proc = subprocess.Popen(
            [CHALLTESTSRV or "pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_mgmt}", "-defaultIPv4", "127.0.0.1",
             "-defaultIPv6", ""], stdout=out, stderr=subprocess.STDOUT)
        proc = subprocess.Popen(
            [PEBBLE or "pebble", "-config", str(tmp / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    running = Pebble(f"https://127.0.0.1:{port}/dir", str(tmp / "pebble-ca.pem"), proc)
    try:
        _wait_ready(running.directory, running.ca_bundle, proc, log)
        yield running
    finally:
        running.stop()
        dns_proc.terminate()
        dns_proc.wait(5)
