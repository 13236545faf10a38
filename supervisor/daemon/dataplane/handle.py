"""One proxy worker process as the supervisor sees it: the process, its channel, its last figures."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from proxy.channel import encode, read_message

log = logging.getLogger("dockyard.supervisor")
CONNECT_TIMEOUT = 10.0  # seconds a new worker has to open its control socket


class WorkerGone(Exception):
    """The worker exited or its channel closed before it answered."""


class Process(Protocol):
    """What the pool needs of a worker's process: ours (asyncio's), or an adopted one."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    async def wait(self) -> int: ...
    def kill(self) -> None: ...


class AdoptedProcess:
    """A worker another supervisor started (a takeover, or a supervisor that died): not our
    child, so its end is seen through a pidfd (Linux >= 5.3) and its exit status is unknown
    (-1)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._fd = os.pidfd_open(pid)
        self._ended = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(self._fd, self._exited)

    def _exited(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)
        self.returncode = -1
        if not self._ended.done():
            self._ended.set_result(-1)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class WorkerHandle:
    def __init__(self, proc: Process, path: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.path = path
        self.started = time.monotonic()
        self.serving = False  # acknowledged its first table: it accepts connections
        self.ever_served = False
        self.acked = 0  # the last table seq it acknowledged, and when
        self.acked_at = 0.0
        self.stats: dict[str, dict[str, Any]] = {}
        self.releases: dict[str, dict[str, dict[str, Any]]] = {}  # app -> release -> counters
        self.inflight: dict[str, int] = {}
        self.connections = (0, 0)
        self.acks = asyncio.Event()  # set at every ack (the pool's settled() waits on it)
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self.on_event: Callable[[dict[str, Any]], None] | None = None  # unsolicited messages

    async def connect(self) -> None:
        """Open the channel once the worker listens on its control socket."""
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            if self.proc.returncode is not None:
                raise WorkerGone(f"worker pid={self.pid} exited with {self.proc.returncode} at start")
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise WorkerGone(f"worker pid={self.pid} never opened {self.path}") from None
                await asyncio.sleep(0.01)
        self._writer = writer
        self._reader = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                if "event" in message:
                    if self.on_event is not None:
                        self.on_event(message)
                    continue
                if "ack" in message:
                    self.acked = max(self.acked, int(message["ack"]))
                    self.acked_at = time.monotonic()
                    self.acks.set()
                future = self._pending.pop(message.get("id") or 0, None)
                if future is not None and not future.done():
                    future.set_result(message)
        except Exception as exc:  # noqa: BLE001 - a broken channel is a gone worker
            log.warning("worker channel failed pid=%d error=%r", self.pid, exc)
        finally:
            self.closed()

    def closed(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerGone(f"worker pid={self.pid} is gone"))
        self._pending.clear()
        self.acks.set()

    def send(self, message: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Write one request; the future holds its answer (WorkerGone if the worker goes)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self._writer is None or self._writer.is_closing():
            future.set_exception(WorkerGone(f"worker pid={self.pid} has no channel"))
            return future
        rid = next(self._ids)
        self._pending[rid] = future
        self._writer.write(encode({**message, "id": rid}))
        return future

    async def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        return await asyncio.wait_for(self.send(message), timeout)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader is not None:
            self._reader.cancel()
