"""Header rules: hop-by-hop stripping and the X-Forwarded-* / X-Request-Id additions."""

from __future__ import annotations

import itertools
import os

# Always hop-by-hop (RFC 9110 7.6.1), plus the legacy ones nginx also drops.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Request headers the proxy sets itself (replaced, not forwarded as sent).
REPLACED_REQUEST = frozenset(
    {b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-for", b"x-request-id", b"content-length", b"expect"}
)

# Client-supplied forwarding headers that never reach the apps (we set our own); every other
# `X-Forwarded-*` name and any name with `_` (X_Forwarded_Proto becomes HTTP_X_FORWARDED_PROTO in
# WSGI/CGI) is dropped too (request.py), as nginx's `underscores_in_headers off`.
DROPPED_REQUEST = frozenset({b"forwarded", b"x-real-ip"})

# Never removed because a Connection header lists them: routing and framing depend on them.
PROTECTED_REQUEST = frozenset({b"host", b"content-length", b"transfer-encoding"})

NO_BODY_STATUSES = frozenset({204, 304})

_RESPONSE_SPECIAL = HOP_BY_HOP | {b"content-length"}
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def connection_tokens(values: list[bytes]) -> set[bytes]:
    """The lower-cased tokens of every Connection header value."""
    tokens: set[bytes] = set()
    for value in values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token:
                tokens.add(token)
    return tokens


_ID_PREFIX = os.urandom(8).hex().encode()
_ids = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_request_id() -> bytes:
    """32 hex digits: a random per-process prefix and a counter (no syscall per request)."""
    return b"%s%016x" % (_ID_PREFIX, next(_ids))


def strip_response_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[list[bytes], int, bool]:
    """Return (header bytes to forward, as fragments to join; content-length or -1; chunked).

    Raises ValueError for a Transfer-Encoding other than exactly `chunked`.
    """
    parts: list[bytes] = []
    length = -1
    chunked = False
    conn_values: list[bytes] | None = None
    for name, value in headers:
        lname = name.lower()
        if lname in _RESPONSE_SPECIAL:
            if lname == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                    continue
            else:
                if lname == b"transfer-encoding":
                    if value.strip().lower() != b"chunked":
                        # gzip, chunked would be de-chunked with its coding dropped: refuse (502).
                        raise ValueError(f"unsupported Transfer-Encoding {value[:64]!r}")
                    chunked = True
                elif lname == b"connection" and value.strip().lower() not in _PLAIN_CONNECTION:
                    if conn_values is None:
                        conn_values = []
                    conn_values.append(value)
                continue
        parts += (name, b": ", value, b"\r\n")
    if conn_values:
        listed = connection_tokens(conn_values)
        listed.discard(b"close")
        listed.discard(b"keep-alive")
        if listed:
            listed.add(b"connection")
            kept = [(n, v) for n, v in headers if n.lower() not in listed]
            return strip_response_headers(kept)[0], length, chunked
    return parts, length, chunked
