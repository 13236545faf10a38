"""Bounded output handling: lines split as they come, and the tail of a container's output.

A process may print any amount, with or without newlines. Each chunk is scanned once (only the
new bytes, never what came before), an unfinished line is handed on in pieces of at most
`max_line` bytes once it grows past that, and the tail keeps at most about twice its limit.
So memory stays bounded and the cost is linear in what was printed.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.model import defaults


class LineSplitter:
    """Bytes in, lines out (without the newline); a line longer than `max_line` comes in pieces."""

    def __init__(self, max_line: int = defaults.OUTPUT_LINE_MAX) -> None:
        self.max_line = max_line
        self._partial = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of an unfinished line (never more than `max_line`)."""
        return len(self._partial)

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._partial += chunk[start:end]
            lines.extend(self._pieces(final=True))
            start = end + 1
        self._partial += chunk[start:]
        lines.extend(self._pieces(final=False))
        return lines

    def flush(self) -> list[bytes]:
        return self._pieces(final=True) if self._partial else []

    def _pieces(self, *, final: bool) -> list[bytes]:
        """Cut `_partial` into max_line pieces; all of it when `final` (a newline ended it)."""
        out: list[bytes] = []
        cap = self.max_line
        taken = 0
        while len(self._partial) - taken > cap or (final and len(self._partial) - taken == cap):
            out.append(bytes(self._partial[taken : taken + cap]))
            taken += cap
        if final:
            if len(self._partial) > taken or not out:
                out.append(bytes(self._partial[taken:]))
            self._partial.clear()
        elif taken:
            del self._partial[:taken]
        return out


class OutputTail:
    """The last `limit` bytes of output, kept as whole lines where possible; `feed` returns
    the lines (decoded) each chunk finished, long lines in pieces."""

    def __init__(self, limit: int, max_line: int = defaults.OUTPUT_LINE_MAX) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._lines = LineSplitter(max_line)
        self.truncated = False

    @property
    def buffered(self) -> int:
        """Bytes held in memory (the tail and an unfinished line)."""
        return len(self._buf) + self._lines.pending

    def feed(self, chunk: bytes) -> list[str]:
        """Add a chunk; return the complete lines it finished."""
        self.keep(chunk)
        return [line.decode(errors="replace") for line in self._lines.feed(chunk)]

    def keep(self, chunk: bytes) -> None:
        if len(chunk) > self.limit:
            self._buf.clear()
            chunk = chunk[-self.limit :]
            self.truncated = True
        self._buf += chunk
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]
            self.truncated = True

    def flush(self) -> list[str]:
        return [line.decode(errors="replace") for line in self._lines.flush()]

    def text(self) -> str:
        data = bytes(self._buf[-self.limit :]) if len(self._buf) > self.limit else bytes(self._buf)
        text = data.decode(errors="replace")
        if self.truncated or len(self._buf) > self.limit:
            text = text.partition("\n")[2] if "\n" in text else text
            return f"[output truncated to the last {self.limit // 1024} KB]\n{text}"
        return text


def tail_of(chunks: Iterable[bytes], limit: int) -> str:
    """The last `limit` bytes of a stream of chunks (a container's logs), read as they come."""
    tail = OutputTail(limit)
    for chunk in chunks:
        tail.keep(chunk)
    return tail.text()
