"""Helpers for TLS tests: trustme certificates, raw HTTP(S) requests that expose the peer cert."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    peer: dict[str, Any] | None  # the server certificate as ssl.getpeercert() gives it


def write_pair(ca: trustme.CA, tmp: Path, name: str, *hosts: str) -> tuple[str, str]:
    """A certificate for `hosts` signed by `ca`, written as name.crt / name.key."""
    cert = ca.issue_cert(*hosts)
    crt, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.private_key_pem.write_to_path(str(key))
    crt.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return str(crt), str(key)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def sans(peer: dict[str, Any] | None) -> list[str]:
    return [v for k, v in (peer or {}).get("subjectAltName", ()) if k == "DNS"]


async def request(port: int, host: str, path: str = "/", *, tls: ssl.SSLContext | None = None,
                  sni: str | None = None, method: str = "GET") -> Reply:
    """One request on a fresh connection (Connection: close), read to EOF."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname=(sni or host) if tls else None
    )
    try:
        peer = writer.get_extra_info("peercert") if tls else None
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return parse(data, peer)


def parse(data: bytes, peer: dict[str, Any] | None = None) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body, peer)
