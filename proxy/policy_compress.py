"""Response compression per app (`compress`, on by default): zstd, br or gzip, whichever the client
prefers among those available (gzip always: zlib; br with the `brotli` package, zstd with
`zstandard`), for compressible types above a size, when the app did not compress already.

Streamed: each piece the app sends is compressed and flushed at once (a sync flush), so a
`text/event-stream` still goes out event by event. The response gets `Content-Encoding`,
`Vary: Accept-Encoding`, loses `Content-Length` (chunked to HTTP/1.1 clients), and a strong
`ETag` becomes weak (the bytes differ from the app's). Skipped: HEAD, statuses other than 2xx
(and 204/206), `Cache-Control: no-transform`, and bodies whose Content-Length is below
`compress_min_size`. A compressible response sent uncompressed (the client accepts no coding
we have) still gets `Vary: Accept-Encoding`, as nginx's `gzip_vary`.

Applied in the response callbacks only, so it needs no coroutine: a request of an app whose
only policy is the default (buffering, compression) keeps the callback fast path when it has
no body.
"""

from __future__ import annotations

import zlib
from importlib.util import find_spec
from typing import Any

GZIP_LEVEL = 5
BROTLI_QUALITY = 4
ZSTD_LEVEL = 3

COMPRESSIBLE = frozenset({
    b"application/json", b"application/javascript", b"application/x-javascript", b"application/xml",
    b"application/xhtml+xml", b"application/rss+xml", b"application/atom+xml", b"application/ld+json",
    b"application/manifest+json", b"application/vnd.api+json", b"application/graphql-response+json",
    b"image/svg+xml", b"image/x-icon", b"font/ttf", b"font/otf", b"application/wasm",
})


def _available() -> tuple[bytes, ...]:
    """The encodings whose package is installed; looked up, not imported: a package loads on the
    first response it compresses (a worker without compression never holds it, issue #19)."""
    found = [name for name, package in ((b"zstd", "zstandard"), (b"br", "brotli")) if find_spec(package)]
    found.append(b"gzip")
    return tuple(found)


AVAILABLE = _available()  # our preference order: zstd, br, gzip


def accepted(lines: list[bytes]) -> bytes:
    """The coding to use for a request's Accept-Encoding (among its header lines), b"" for none."""
    value = b""
    for line in lines:
        if line[:16].lower() == b"accept-encoding:":
            value += b"," + line[16:]
    if not value:
        return b""
    wanted: dict[bytes, float] = {}
    for part in value.split(b","):
        fields = part.strip().split(b";")
        coding = fields[0].strip().lower()
        if not coding:
            continue
        q = 1.0
        for f in fields[1:]:
            k, _, v = f.strip().partition(b"=")
            if k.strip().lower() == b"q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        wanted[coding] = q
    best = b""
    best_q = 0.0
    for coding in AVAILABLE:
        q = wanted.get(coding, wanted.get(b"*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


def compressible(status: int, headers: list[tuple[bytes, bytes]], min_size: int) -> bool:
    if status < 200 or status >= 300 or status in (204, 206):
        return False
    ctype = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-encoding":
            if value.strip().lower() not in (b"", b"identity"):
                return False
        elif lname == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
        elif lname == b"content-length":
            if value.strip().isdigit() and int(value) < min_size:
                return False
        elif lname == b"cache-control" and b"no-transform" in value.lower():
            return False
    return ctype.startswith(b"text/") or ctype in COMPRESSIBLE or ctype.endswith((b"+json", b"+xml"))


VARY_LINE = b"Vary: Accept-Encoding\r\n"


def varies(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the app's `Vary` already covers Accept-Encoding (or is `*`)."""
    for name, value in headers:
        if name.lower() == b"vary":
            lvalue = value.lower()
            if b"accept-encoding" in lvalue or lvalue.strip() == b"*":
                return True
    return False


def rewrite(headers: list[tuple[bytes, bytes]], coding: bytes) -> list[tuple[bytes, bytes]]:
    """The app's headers for a compressed body: no Content-Length, weak ETag, Vary, Content-Encoding."""
    out: list[tuple[bytes, bytes]] = []
    vary = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length" or lname == b"content-encoding":
            continue
        if lname == b"vary":
            vary = value if not vary else vary + b", " + value
            continue
        if lname == b"etag" and not value.startswith(b"W/"):
            value = b"W/" + value
        out.append((name, value))
    if b"accept-encoding" not in vary.lower() and vary.strip() != b"*":
        vary = b"Accept-Encoding" if not vary else vary + b", Accept-Encoding"
    out.append((b"Vary", vary))
    out.append((b"Content-Encoding", coding))
    return out


class Encoder:
    """One response's compressor: `feed` returns what can go out now (flushed), `finish` the end."""

    __slots__ = ("coding", "z", "other")

    def __init__(self, coding: bytes) -> None:
        self.coding = coding
        self.z: Any = None
        self.other: Any = None
        if coding == b"gzip":
            self.z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        elif coding == b"br":
            import brotli

            self.other = brotli.Compressor(quality=BROTLI_QUALITY)
        else:
            import zstandard

            self.other = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def feed(self, data: bytes) -> bytes:
        if self.z is not None:
            return bytes(self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH))
        if self.coding == b"br":
            return bytes(self.other.process(data) + self.other.flush())
        import zstandard

        return bytes(self.other.compress(data) + self.other.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def finish(self) -> bytes:
        if self.z is not None:
            return bytes(self.z.flush())
        if self.coding == b"br":
            return bytes(self.other.finish())
        return bytes(self.other.flush())
