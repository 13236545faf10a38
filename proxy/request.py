"""Parsing a client request head into what the exchange needs (and rejecting smuggling shapes)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ClientRequestError
from .forwarding import safe_request_id
from .headers import (
    DROPPED_REQUEST,
    HOP_BY_HOP,
    PROTECTED_REQUEST,
    REPLACED_REQUEST,
    connection_tokens,
    new_request_id,
)

_SPECIAL = HOP_BY_HOP | REPLACED_REQUEST | DROPPED_REQUEST | {b"host", b"accept"}
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# A host name (letters, digits, `-`, `_`, dots) or an IP literal, with an optional port.
_HOST = re.compile(rb"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_GOOD_HOSTS: dict[bytes, bool] = {}  # memo of valid_host (bounded: cleared when full)
GOOD_HOSTS_MAX = 4096


@dataclass(slots=True)
class RequestHead:
    """The parts of a request head the proxy acts on; `lines` are the headers to forward."""

    lines: list[bytes]
    host: bytes
    content_length: int  # -1: none
    chunked: bool
    upgrade: bytes | None  # only `websocket` is forwarded as an upgrade
    xff: bytes | None
    request_id: bytes
    accept: bytes | None
    expect_continue: bool
    proto: bytes | None  # the client's X-Forwarded-Proto (believed from trusted proxies only)


def valid_host(host: bytes) -> bool:
    """A Host value we route and copy into headers and redirects: a name or IP literal with an
    optional port; no `/`, `#`, `?`, `@`, spaces or high bytes. Empty (HTTP/1.0) is allowed."""
    ok = _GOOD_HOSTS.get(host)
    if ok is None:
        if len(_GOOD_HOSTS) >= GOOD_HOSTS_MAX:
            _GOOD_HOSTS.clear()
        ok = _GOOD_HOSTS[host] = not host or (len(host) <= 255 and _HOST.fullmatch(host) is not None)
    return ok


def split_target(url: bytes, method: bytes) -> tuple[bytes, bytes | None]:
    """A request-target that is not origin-form: (origin-form target, authority).

    Absolute-form (`http://host/path?q`) is routed by its authority, which replaces Host
    (RFC 9112 3.2.2), and forwarded in origin-form; `*` only for OPTIONS. Anything else: 400.
    """
    if url == b"*" and method == b"OPTIONS":
        return url, None
    lower = url[:8].lower()
    if lower.startswith(b"http://"):
        rest = url[7:]
    elif lower.startswith(b"https://"):
        rest = url[8:]
    else:
        raise ClientRequestError(400, "request target is not origin-form or absolute-form")
    end = len(rest)
    for sep in (b"/", b"?"):
        i = rest.find(sep)
        if 0 <= i < end:
            end = i
    authority = rest[:end]
    path = rest[end:]
    if not authority or b"@" in authority or not valid_host(authority):
        raise ClientRequestError(400, "invalid authority in the request target")
    if not path.startswith(b"/"):
        path = b"/" + path
    return path, authority


def parse_head(
    headers: list[tuple[bytes, bytes]], version: str, max_head: int = 0, head_size: int = 0,
    authority: bytes | None = None,
) -> RequestHead:
    """Validate the headers. Raises ClientRequestError(400|431) for what the proxy refuses.

    431 when `max_head` is set and `head_size` (the request line's share) plus the headers
    exceed it. Stricter than RFC 9112 on purpose: Content-Length with Transfer-Encoding, a
    repeated Content-Length (even with equal values), a Transfer-Encoding other than exactly
    `chunked` (or any on HTTP/1.0), a repeated Host, a missing Host on HTTP/1.1 or an invalid
    one are all answered 400. `authority` (of an absolute-form target) replaces the Host header.
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
    proto: bytes | None = None
    rid: bytes | None = None
    accept: bytes | None = None
    expect = False
    for name, value in headers:
        line = b"%s: %s\r\n" % (name, value)
        size += len(line)
        lname = name.lower()
        if lname not in _SPECIAL:
            # X-Forwarded-Port/-Ssl/... are ours to set; `_` names would merge into the CGI
            # variables of `-` names (X_Forwarded_Proto -> HTTP_X_FORWARDED_PROTO).
            if b"_" not in lname and not lname.startswith(b"x-forwarded-"):
                lines.append(line)
            continue
        if lname == b"host":
            if host is not None:
                bad = bad or "repeated Host header"
            host = value
            if authority is None:
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
        elif lname == b"x-forwarded-proto":
            proto = value.strip().lower()
        elif lname == b"x-request-id":
            rid = value
        elif lname == b"expect":
            expect = value.strip().lower() == b"100-continue"
        # other hop-by-hop, replaced and dropped headers are dropped
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
        length = int(cl)  # held to the routed app's max_body_size by the connection (server.py)
    chunked = False
    if te is not None:
        if version == "1.0":
            raise ClientRequestError(400, "Transfer-Encoding on an HTTP/1.0 request")
        if te.strip().lower() != b"chunked":
            raise ClientRequestError(400, "unsupported Transfer-Encoding")
        chunked = True
    if authority is not None:
        host = authority
        lines.append(b"Host: %s\r\n" % authority)
    elif host is None:
        if version != "1.0":
            raise ClientRequestError(400, "missing Host header")
        host = b""
    if not valid_host(host):
        raise ClientRequestError(400, "invalid Host header")
    if conn_values is not None:
        tokens = connection_tokens(conn_values)
        if upgrade is not None:
            if b"upgrade" not in tokens:
                upgrade = None
            elif length > 0 or chunked:
                # llhttp hands the bytes after an upgrade head over unparsed: no body here.
                raise ClientRequestError(400, "Upgrade request with a body")
            elif upgrade.strip().lower() != b"websocket":
                upgrade = None  # h2c and the like: removed, the request goes on as a plain one
        listed = tokens - {b"close", b"keep-alive", b"upgrade"} - PROTECTED_REQUEST
        if listed:
            lines = [ln for ln in lines if ln.split(b":", 1)[0].lower() not in listed]
    elif upgrade is not None:
        upgrade = None
    if proto is not None and proto not in (b"http", b"https"):
        proto = None
    request_id = rid if rid is not None and safe_request_id(rid) else new_request_id()
    # positional: lines, host, content_length, chunked, upgrade, xff, request_id, accept, expect_continue, proto
    return RequestHead(lines, host, length, chunked, upgrade, xff, request_id, accept, expect, proto)
