"""Parsing a client request head into what the exchange needs (and rejecting smuggling shapes)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ClientRequestError
from .headers import HOP_BY_HOP, REPLACED_REQUEST, connection_tokens, new_request_id

_SPECIAL = HOP_BY_HOP | REPLACED_REQUEST | {b"host", b"accept"}
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


@dataclass(slots=True)
class RequestHead:
    """The parts of a request head the proxy acts on; `lines` are the headers to forward."""

    lines: list[bytes]
    host: bytes
    content_length: int  # -1: none
    chunked: bool
    upgrade: bytes | None
    xff: bytes | None
    request_id: bytes
    accept: bytes | None
    expect_continue: bool


def parse_head(
    headers: list[tuple[bytes, bytes]], version: str, max_body: int, max_head: int = 0, head_size: int = 0
) -> RequestHead:
    """Validate the headers. Raises ClientRequestError(400|413|431) for what the proxy refuses.

    431 when `max_head` is set and `head_size` (the request line's share) plus the headers
    exceed it. Stricter than RFC 9112 on purpose: Content-Length with Transfer-Encoding, a
    repeated Content-Length (even with equal values), a Transfer-Encoding other than exactly
    `chunked`, a repeated Host or a missing Host on HTTP/1.1 are all answered 400.
    """
    size = head_size
    bad: str | None = None  # raised after the size check: a too large head is 431 first
    lines: list[bytes] = []
    host: bytes | None = None
    cl: bytes | None = None
    te: bytes | None = None
    conn_values: list[bytes] | None = None
    upgrade: bytes | None = None
    xff: bytes | None = None
    rid: bytes | None = None
    accept: bytes | None = None
    expect = False
    for name, value in headers:
        line = b"%s: %s\r\n" % (name, value)
        size += len(line)
        lname = name.lower()
        if lname not in _SPECIAL:
            lines.append(line)
            continue
        if lname == b"host":
            if host is not None:
                bad = bad or "repeated Host header"
            host = value
            lines.append(line)
        elif lname == b"accept":
            accept = value
            lines.append(line)
        elif lname == b"content-length":
            if cl is not None:
                bad = bad or "repeated Content-Length"
            cl = value
        elif lname == b"transfer-encoding":
            if te is not None:
                bad = bad or "repeated Transfer-Encoding"
            te = value
        elif lname == b"connection":
            if conn_values is None:
                conn_values = []
            conn_values.append(value)
        elif lname == b"upgrade":
            upgrade = value
        elif lname == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
        elif lname == b"x-request-id":
            rid = value
        elif lname == b"expect":
            expect = value.strip().lower() == b"100-continue"
        # other hop-by-hop and replaced headers are dropped
    if max_head and size > max_head:
        raise ClientRequestError(431, "request head too large")
    if bad is not None:
        raise ClientRequestError(400, bad)
    if cl is not None and te is not None:
        raise ClientRequestError(400, "Content-Length together with Transfer-Encoding")
    length = -1
    if cl is not None:
        if not cl.isdigit() or len(cl) > 18:
            raise ClientRequestError(400, "invalid Content-Length")
        length = int(cl)
        if max_body and length > max_body:
            raise ClientRequestError(413, "body larger than max_body_size")
    chunked = False
    if te is not None:
        if te.strip().lower() != b"chunked":
            raise ClientRequestError(400, "unsupported Transfer-Encoding")
        chunked = True
    if host is None:
        if version != "1.0":
            raise ClientRequestError(400, "missing Host header")
        host = b""
    if conn_values is not None:
        tokens = connection_tokens(conn_values)
        if upgrade is not None and b"upgrade" not in tokens:
            upgrade = None
        listed = tokens - {b"close", b"keep-alive", b"upgrade"}
        if listed:
            lines = [ln for ln in lines if ln.split(b":", 1)[0].lower() not in listed]
    elif upgrade is not None:
        upgrade = None
    # positional: lines, host, content_length, chunked, upgrade, xff, request_id, accept, expect_continue
    return RequestHead(lines, host, length, chunked, upgrade, xff, rid or new_request_id(), accept, expect)
