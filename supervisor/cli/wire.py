"""HTTP/1.1 over the daemon's unix socket, as small as the CLI needs: one request per
connection (`Connection: close`), an answer read by Content-Length, chunks, or to the end.

Not http.client: with the email parser and ssl it imports, it was a quarter of a `dockyard
deploy`'s ~75 ms of CPU, spent on the server the deploy is swapping (issue #19). The peer is
our own daemon (aiohttp), or the test's stub; every malformed or oversized answer is a
`WireError`, which the client reports as one line.

Buffers are bytearrays consumed from the front (`del buf[:n]`, which CPython does without
copying the rest): a build's 20 MiB of output arrives as ~200,000 small chunks, and slicing a
64 KiB bytes buffer per chunk copied ~200x the stream. `before_wait`, when set, runs before
every blocking read: the CLI flushes what it printed there, so a stream's output reaches the
terminal (or git, for a push) as soon as the daemon pauses, in one write per burst rather
than one per line.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

MAX_HEAD = 64 * 1024  # bytes of status line and headers
MAX_LINE = 8 * 1024 * 1024  # bytes of one answer line (an NDJSON event)
_CHUNK = 64 * 1024


class WireError(OSError):
    """The daemon's answer is not the HTTP we speak, or the connection broke off."""


class Answer:
    """The status, the headers (lower-case names) and the body of one answer, read as asked."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._eof = False
        self.before_wait: Callable[[], None] | None = None
        head = self._until(b"\r\n\r\n", MAX_HEAD, "the answer's head")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise WireError(f"not an HTTP answer: {lines[0][:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise WireError(f"a malformed header line: {line[:80]!r}")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        if length is not None and not length.isdigit():
            raise WireError(f"a malformed Content-Length: {length[:40]!r}")
        self._left = None if self._chunked or length is None else int(length)
        self._body = bytearray()  # decoded body bytes not yet returned
        self._scanned = 0  # bytes of _body known to hold no newline

    def _fill(self) -> bool:
        if self._eof:
            return False
        if self.before_wait is not None:
            self.before_wait()
        data = self._sock.recv(_CHUNK)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _until(self, mark: bytes, limit: int, what: str) -> bytes:
        """The raw bytes up to `mark` (consumed, not returned)."""
        while (at := self._buf.find(mark)) < 0:
            if len(self._buf) > limit:
                raise WireError(f"{what} is longer than {limit} bytes")
            if not self._fill():
                raise WireError(f"the connection closed in {what}")
        out = bytes(self._buf[:at])
        del self._buf[:at + len(mark)]
        return out

    def _exactly(self, n: int, what: str) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise WireError(f"the connection closed in {what}")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _more(self) -> bool:
        """Decode more of the body into `_body`; False at its end."""
        if self._chunked:
            if self._left == 0:
                return False
            size_line = self._until(b"\r\n", 1024, "a chunk size").split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise WireError(f"a malformed chunk size: {size_line[:40]!r}") from None
            if size == 0:
                self._left = 0
                return False
            self._body += self._exactly(size, "a chunk")
            self._exactly(2, "a chunk's end")
            return True
        if self._left is not None:
            if self._left == 0:
                return False
            if not self._buf and not self._fill():
                raise WireError("the connection closed in the answer's body")
            take = min(self._left, len(self._buf))
            self._body += self._buf[:take]
            del self._buf[:take]
            self._left -= take
            return True
        if not self._buf and not self._fill():
            return False
        self._body += self._buf
        self._buf.clear()
        return True

    def read(self, limit: int = 1 << 30) -> bytes:
        """The whole (rest of the) body."""
        while self._more():
            if len(self._body) > limit:
                raise WireError(f"the answer is longer than {limit} bytes")
        out = bytes(self._body)
        self._body.clear()
        return out

    def readline(self) -> bytes:
        """The next line of the body with its newline; the last may lack one; b"" at the end."""
        while (at := self._body.find(b"\n", self._scanned)) < 0:
            self._scanned = len(self._body)
            if self._scanned > MAX_LINE:
                raise WireError(f"an answer line is longer than {MAX_LINE} bytes")
            if not self._more():
                out = bytes(self._body)
                self._body.clear()
                self._scanned = 0
                return out
        out = bytes(self._body[:at + 1])
        del self._body[:at + 1]
        self._scanned = 0
        return out


class Connection:
    """One request and its answer on a fresh unix-socket connection."""

    def __init__(self, path: Path, timeout: float | None) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def request(self, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = sock
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return Answer(sock)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
