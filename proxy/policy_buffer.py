"""Request buffering: the whole body is read before a target is picked, so a slow client never
holds an app worker (nginx's `proxy_request_buffering on`). Up to `memory` bytes stay in memory,
the rest goes to an anonymous temporary file (mode 0600, unlinked at creation, so nothing is left
behind even after a crash). The size limit is the connection's (`Exchange.body_limit`, checked
in `server.on_body` before a byte gets here)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import IO

READ_CHUNK = 256 * 1024


class Spool:
    __slots__ = ("memory", "parts", "size", "file", "waiter")

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.parts: list[bytes] = []
        self.size = 0
        self.file: IO[bytes] | None = None
        self.waiter: asyncio.Future[None] | None = None  # set when the body is complete

    def write(self, data: bytes) -> None:
        size = self.size = self.size + len(data)
        f = self.file
        if f is None and size <= self.memory:
            self.parts.append(data)
            return
        if f is None:
            import tempfile  # on the first spill only: tempfile pulls in shutil, bz2, lzma (~1 MB)

            f = self.file = tempfile.TemporaryFile(prefix="dockyard-body-")
            for part in self.parts:
                f.write(part)
            self.parts = []
        f.write(data)

    def complete(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def chunks(self) -> Iterator[bytes]:
        f = self.file
        if f is None:
            yield from self.parts
            return
        f.flush()
        f.seek(0)
        while True:
            data = f.read(READ_CHUNK)
            if not data:
                return
            yield data

    def close(self) -> None:
        self.parts = []
        if self.file is not None:
            self.file.close()
            self.file = None


class ResponseBuffer:
    """Response buffering (`buffer_responses`): what the client cannot take yet, first in first
    out, in memory up to `memory` bytes and beyond it in an anonymous 0600 temporary file, so
    the app's connection is read at the app's pace and freed when its response is complete."""

    __slots__ = ("memory", "parts", "in_memory", "file", "read_pos", "write_pos", "waiter")

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.parts: list[bytes] = []  # older than anything in the file
        self.in_memory = 0
        self.file: IO[bytes] | None = None
        self.read_pos = 0
        self.write_pos = 0
        self.waiter: asyncio.Future[None] | None = None  # set when emptied

    @property
    def size(self) -> int:
        return self.in_memory + self.write_pos - self.read_pos

    def write(self, data: bytes) -> None:
        if self.write_pos == self.read_pos and self.in_memory + len(data) <= self.memory:
            self.parts.append(data)
            self.in_memory += len(data)
            return
        f = self.file
        if f is None:
            import tempfile

            f = self.file = tempfile.TemporaryFile(prefix="dockyard-response-")
        f.seek(self.write_pos)
        f.write(data)
        self.write_pos += len(data)

    def read(self) -> bytes:
        """The oldest bytes held (at most READ_CHUNK from the file); b"" when empty."""
        if self.parts:
            data = self.parts.pop(0)
            self.in_memory -= len(data)
            return data
        f = self.file
        if f is None or self.read_pos >= self.write_pos:
            return b""
        f.flush()
        f.seek(self.read_pos)
        data = f.read(min(READ_CHUNK, self.write_pos - self.read_pos))
        self.read_pos += len(data)
        if self.read_pos >= self.write_pos:  # empty: start the file over
            self.read_pos = self.write_pos = 0
            f.seek(0)
            f.truncate()
        return data

    def emptied(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.parts = []
        self.in_memory = 0
        if self.file is not None:
            self.file.close()
            self.file = None
