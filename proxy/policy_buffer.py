"""Request buffering: the whole body is read before a target is picked, so a slow client never
holds an app worker (nginx's `proxy_request_buffering on`). Up to `memory` bytes stay in memory,
the rest goes to an anonymous temporary file (mode 0600, unlinked at creation, so nothing is left
behind even after a crash); at most `max_size` bytes (413 beyond)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from typing import IO

from .errors import ClientRequestError

READ_CHUNK = 256 * 1024


class Spool:
    __slots__ = ("memory", "max_size", "parts", "size", "file", "waiter")

    def __init__(self, memory: int, max_size: int) -> None:
        self.memory = memory
        self.max_size = max_size  # 0: no limit
        self.parts: list[bytes] = []
        self.size = 0
        self.file: IO[bytes] | None = None
        self.waiter: asyncio.Future[None] | None = None  # set when the body is complete

    def write(self, data: bytes) -> None:
        size = self.size + len(data)
        if self.max_size and size > self.max_size:
            raise ClientRequestError(413, "body larger than the app's max_body_size")
        self.size = size
        f = self.file
        if f is None and size <= self.memory:
            self.parts.append(data)
            return
        if f is None:
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
