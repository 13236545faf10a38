"""Open-loop, constant-rate HTTP load: sends at fixed times, latency from the scheduled time.

The generator of `dockyard loadtest` (and of the benchmarks in bench/, which import it from
here). Only GET requests are sent; the request of index i goes to ``paths[i % len(paths)]``.

Request i of a run is due at ``t0 + i / rate``. It is sent at that time whether or not earlier
requests have answered (open loop), on an idle keep-alive connection or a new one, and its
latency is ``completion - due time`` (or ``- send time`` for a request sent up to 0.5 ms early,
which the schedule allows to avoid oversleeping). A stall in the server or in the generator
therefore shows up as latency of every request that was due during it: no coordinated omission.

The schedule is dealt round-robin to `workers` processes (multiprocessing, spawn), each running
its own event loop (uvloop when importable) with a small HTTP/1.1 client on asyncio protocols.
Workers ignore SIGINT: Ctrl-C is the parent's to handle (it ends the run with `end_at`). Every
worker records, per request: due time, latency, outcome, and how late it was actually
sent (the generator's own lag), so the parent can verify the rate it achieved.

Outcomes: ``ok`` (2xx), ``connect`` (refused, reset or closed before any response byte),
``5xx``, ``timeout`` (no full response `timeout` seconds after it was sent), ``other``
(any other status, a malformed or cut response). A request on a reused keep-alive connection
that the server closed before answering is retried once on a new connection (what HTTP clients
do for idempotent requests; counted in ``retries``), still timed from its due time.

A worker keeps at most MAX_CONNECTIONS connections: when a server stalls, later requests wait
for a free connection instead of opening thousands (that would exhaust the ephemeral ports and
measure the generator). They are still timed from their due time, so the wait is in the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

from supervisor.cli.loadtest import DEFAULT_TIMEOUT

Outcome = Literal["ok", "connect", "5xx", "timeout", "other"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "connect", "5xx", "timeout", "other")
ERROR_KINDS: tuple[Outcome, ...] = OUTCOMES[1:]
_CODE = {name: i for i, name in enumerate(OUTCOMES)}

PER_WORKER_RATE = 600.0  # req/s one worker process is asked to carry (auto worker count)
START_MARGIN = 0.5  # seconds between the workers being ready and the first send
MAX_CONNECTIONS = 512  # per worker; beyond it requests wait for a connection (timed from due)
USER_AGENT = "dockyard-loadtest"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes: a local TCP address (127.0.0.1 unless told), the Host header, the
    paths (request i goes to ``paths[i % len(paths)]``; `path` when `paths` is empty) and extra
    header lines. The values are checked by the caller (`loadtest.target`)."""

    port: int
    host_header: str = "localhost"
    path: str = "/"
    address: str = "127.0.0.1"
    paths: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = USER_AGENT

    def all_paths(self) -> tuple[str, ...]:
        return self.paths or (self.path,)

    def request(self, keepalive: bool, path: str | None = None) -> bytes:
        conn = "" if keepalive else "Connection: close\r\n"
        extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        return (
            f"GET {path or self.path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            f"User-Agent: {self.user_agent}\r\n{extra}{conn}\r\n"
        ).encode()

    def requests(self, keepalive: bool) -> list[bytes]:
        """One request per entry of `all_paths()`, in order."""
        return [self.request(keepalive, path) for path in self.all_paths()]


@dataclass(slots=True)
class LoadResult:
    """Per-request samples of one run, merged over the workers and sorted by due time.

    `due` and `sent` are seconds on time.monotonic() (system-wide on Linux, so comparable with
    the parent's timestamps); `latency_ms` is NaN for failed requests.
    """

    rate: float
    duration: float
    workers: int
    t0: float
    due: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    outcome: list[Outcome] = field(default_factory=list)
    retries: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.due)

    def errors(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        for outcome in self.outcome:
            if outcome != "ok":
                counts[outcome] += 1
        return counts

    def achieved_rate(self) -> float:
        """Requests sent per second of actual sending (first to last send)."""
        if len(self.sent) < 2:
            return 0.0
        span = max(self.sent) - min(self.sent)
        return (len(self.sent) - 1) / span if span > 0 else 0.0

    def send_lag_ms(self) -> list[float]:
        return [(s - d) * 1000.0 for s, d in zip(self.sent, self.due, strict=True)]


def auto_workers(rate: float) -> int:
    return max(1, math.ceil(rate / PER_WORKER_RATE))


class LoadRun:
    """A load run in worker processes: `start()` returns the due time of request 0, `join()`
    waits for the end and returns the merged LoadResult. `stop()` kills the workers."""

    def __init__(
        self,
        target: Target,
        rate: float,
        duration: float,
        *,
        workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        keepalive: bool = True,
    ) -> None:
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        self.target, self.rate, self.duration = target, rate, duration
        self.workers = workers or auto_workers(rate)
        self.timeout, self.keepalive = timeout, keepalive
        self.t0 = 0.0
        self._procs: list[Any] = []
        self._pipes: list[Connection] = []

    def start(self, ready_timeout: float = 30.0) -> float:
        ctx = multiprocessing.get_context("spawn")
        for index in range(self.workers):
            parent, child = ctx.Pipe()
            args = (child, self.target, self.rate, index, self.workers, self.duration,
                    self.timeout, self.keepalive)
            proc = ctx.Process(target=_worker_main, args=args, name=f"dockyard-load-{index}",
                               daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._pipes.append(parent)
        for pipe in self._pipes:
            if not pipe.poll(ready_timeout):
                self.stop()
                raise RuntimeError("a load worker did not start")
            pipe.recv()  # "ready"
        self.t0 = time.monotonic() + START_MARGIN
        for pipe in self._pipes:
            pipe.send(self.t0)
        return self.t0

    def end_at(self, when: float) -> None:
        """Send nothing due at or after `when` (time.monotonic()); shortens the run's duration."""
        when = max(self.t0, when)
        if when < self.t0 + self.duration:
            self.duration = when - self.t0
            for pipe in self._pipes:
                pipe.send(when)

    def join(self) -> LoadResult:
        result = LoadResult(self.rate, self.duration, self.workers, self.t0)
        rows: list[tuple[float, float, float, int]] = []
        wait = self.duration + START_MARGIN + self.timeout * 2 + 30.0
        try:
            for pipe in self._pipes:
                if not pipe.poll(wait):
                    raise RuntimeError("a load worker did not finish")
                part = pipe.recv()
                due, sent, lat = (array("d", part[k]) for k in ("due", "sent", "lat"))
                codes = array("b", part["codes"])
                rows.extend(zip(due, sent, lat, codes, strict=True))
                result.retries += part["retries"]
                result.error_samples.extend(part["errors"])
        finally:
            self.stop()
        rows.sort()
        result.due = [r[0] for r in rows]
        result.sent = [r[1] for r in rows]
        result.latency_ms = [r[2] for r in rows]
        result.outcome = [OUTCOMES[r[3]] for r in rows]
        result.error_samples = result.error_samples[:20]
        return result

    def stop(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(5)
        for pipe in self._pipes:
            pipe.close()
        self._procs, self._pipes = [], []


def run_load(target: Target, rate: float, duration: float, **kwargs: Any) -> LoadResult:
    run = LoadRun(target, rate, duration, **kwargs)
    run.start()
    return run.join()


# ---- the worker process -------------------------------------------------------------------


def _worker_main(
    pipe: Connection, target: Target, rate: float, index: int, workers: int,
    duration: float, timeout: float, keepalive: bool,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    try:
        import uvloop

        new_loop: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        new_loop = asyncio.new_event_loop
    pipe.send("ready")
    t0 = pipe.recv()
    loop = new_loop()
    try:
        client = _Client(loop, target, keepalive, timeout)
        client.t0, client.end = t0, t0 + duration

        def end_at() -> None:  # the parent may end the run early (LoadRun.end_at)
            try:
                if pipe.poll():
                    client.end = min(client.end, pipe.recv())
            except (EOFError, OSError):  # the parent is gone: stop sending at once
                client.end = 0.0
                loop.remove_reader(pipe.fileno())

        loop.add_reader(pipe.fileno(), end_at)
        loop.run_until_complete(client.run(t0, rate, index, workers))
        loop.remove_reader(pipe.fileno())
        os.set_blocking(pipe.fileno(), True)  # the event loop made it non-blocking; results are big
        with contextlib.suppress(BrokenPipeError):  # the parent is gone: nobody to tell
            pipe.send({
                "due": client.due.tobytes(), "sent": client.sent.tobytes(),
                "lat": client.lat.tobytes(), "codes": client.codes.tobytes(),
                "retries": client.retries, "errors": client.error_samples,
            })
    finally:
        loop.close()
        pipe.close()


class _Request:
    __slots__ = ("slot", "due", "path", "sent", "reused", "retried", "timer", "done")

    def __init__(self, slot: int, due: float, path: int) -> None:
        self.slot, self.due, self.path = slot, due, path
        self.sent = 0.0
        self.reused = self.retried = self.done = False
        self.timer: asyncio.TimerHandle | None = None


class _Client:
    """Sends the worker's share of the schedule; records one row per request in arrays."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: Target, keepalive: bool, timeout: float) -> None:
        self.loop, self.target, self.keepalive, self.timeout = loop, target, keepalive, timeout
        self.paths = target.all_paths()
        self.payloads = target.requests(keepalive)
        self.idle: list[_Conn] = []
        self.queue: deque[_Request] = deque()  # waiting for a connection (MAX_CONNECTIONS)
        self.open = 0  # connections open or connecting
        self.tasks: set[asyncio.Task[None]] = set()
        self.due, self.sent, self.lat = array("d"), array("d"), array("d")
        self.codes = array("b")
        self.retries = 0
        self.error_samples: list[str] = []
        self.pending = 0
        self.all_sent = False
        self.t0 = 0.0
        self.end = math.inf
        self.finished: asyncio.Future[None] = loop.create_future()

    async def run(self, t0: float, rate: float, index: int, workers: int) -> None:
        period = workers / rate
        first = t0 + index / rate
        i = 0
        while True:
            due = first + i * period
            if due >= self.end:
                break
            i += 1
            delay = due - time.monotonic()
            if delay > 0.0005:
                await asyncio.sleep(min(delay, 0.05))  # wake up to notice an earlier end
                delay = due - time.monotonic()
                if delay > 0.0005:
                    i -= 1
                    continue
            slot = len(self.due)
            self.due.append(due)
            self.sent.append(0.0)
            self.lat.append(math.nan)
            self.codes.append(0)
            self.pending += 1
            self.send(_Request(slot, due, (index + (i - 1) * workers) % len(self.payloads)))
        self.all_sent = True
        if self.pending:
            await self.finished
        for conn in self.idle:
            conn.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the closed connections' callbacks run

    def send(self, req: _Request) -> None:
        now = time.monotonic()
        if not req.sent:
            req.sent = now
            self.sent[req.slot] = now
            req.timer = self.loop.call_at(now + self.timeout, self._expire, req)
        while self.idle:
            conn = self.idle.pop()
            if conn.usable():
                req.reused = True
                conn.begin(req)
                return
        req.reused = False
        if self.open >= MAX_CONNECTIONS:
            self.queue.append(req)
            return
        self.open += 1
        task = self.loop.create_task(self._connect(req))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def next_queued(self) -> _Request | None:
        while self.queue:
            req = self.queue.popleft()
            if not req.done:
                return req
        return None

    def closed(self) -> None:
        """A connection closed (or failed to open): its slot goes to a waiting request."""
        self.open -= 1
        req = self.next_queued()
        if req is not None:
            self.send(req)

    async def _connect(self, req: _Request) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Conn(self), self.target.address, self.target.port
            )
        except OSError as exc:
            self.finish(req, "connect", f"connect: {exc!r}")
            self.closed()
            return
        except Exception as exc:  # never lose a request: anything else is an "other" error
            self.finish(req, "other", f"connect: {exc!r}")
            self.closed()
            return
        if req.done:  # timed out while connecting
            self.release(conn)
            return
        conn.begin(req)

    def _expire(self, req: _Request) -> None:
        self.finish(req, "timeout", f"timeout after {self.timeout:g}s")

    def lost_before_response(self, req: _Request, why: str) -> None:
        """The server closed or reset the connection before any byte of the response."""
        if req.reused and not req.retried and not req.done:
            req.retried = True
            self.retries += 1
            self.send(req)
            return
        self.finish(req, "connect", why)

    def finish(self, req: _Request, outcome: Outcome, detail: str = "") -> None:
        if req.done:
            return
        req.done = True
        if req.timer is not None:
            req.timer.cancel()
        now = time.monotonic()
        if outcome == "ok":
            # From the due time, or from the send when it went out early (the schedule allows
            # up to 0.5 ms): whichever came first. A late send's lag stays in the latency (no
            # coordinated omission); an early one is not timed from after its own send.
            self.lat[req.slot] = (now - min(req.due, req.sent)) * 1000.0
        self.codes[req.slot] = _CODE[outcome]
        if outcome != "ok" and len(self.error_samples) < 10:
            self.error_samples.append(
                f"{outcome}: {detail} (GET {self.paths[req.path]}, due at "
                f"{req.due - self.t0:.3f} s)"
            )
        self.pending -= 1
        if self.all_sent and self.pending == 0 and not self.finished.done():
            self.finished.set_result(None)

    def release(self, conn: _Conn) -> None:
        if self.keepalive and conn.usable():
            req = self.next_queued()
            if req is not None:
                req.reused = True
                conn.begin(req)
            else:
                self.idle.append(conn)
        else:
            conn.close()


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: Any = None  # uvloop's transports do not subclass asyncio.Transport
        self.req: _Request | None = None
        self.buf = bytearray()
        self.closed = False
        self.reusable = True
        self.head_end = -1
        self.status = 0
        self.length = -1  # -1: until EOF; -2: chunked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def usable(self) -> bool:
        return not self.closed and self.reusable and self.transport is not None \
            and not self.transport.is_closing()

    def begin(self, req: _Request) -> None:
        self.req = req
        self.buf.clear()
        self.head_end, self.status, self.length = -1, 0, -1
        assert self.transport is not None
        self.transport.write(self.client.payloads[req.path])

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        req = self.req
        if req is None:  # unsolicited bytes: this connection is no good any more
            self.close()
            return
        self.buf += data
        if self.head_end < 0 and not self._parse_head():
            return
        if self._complete():
            self._done()

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        self.head_end = end + 4
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            self.status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self.status = -1
        if not head[0].startswith("HTTP/1.1"):
            self.reusable = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                self.length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                self.length = -2
            elif name == "connection" and "close" in value:
                self.reusable = False
        if self.length == -1:
            self.reusable = False
        return True

    def _complete(self) -> bool:
        body = len(self.buf) - self.head_end
        if self.length >= 0:
            return body >= self.length
        if self.length == -2:
            return self.buf.endswith(b"0\r\n\r\n")
        return False  # until EOF

    def _done(self) -> None:
        req, self.req = self.req, None
        assert req is not None
        status = self.status
        if 200 <= status < 300:
            self.client.finish(req, "ok")
        elif status >= 500:
            self.client.finish(req, "5xx", f"status {status}")
        else:
            self.client.finish(req, "other", f"status {status}")
        self.client.release(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.loop.call_soon(self.client.closed)
        req, self.req = self.req, None
        if req is None or req.done:
            return
        if not self.buf:
            self.client.lost_before_response(req, f"closed before response: {exc!r}")
        elif self.head_end >= 0 and self.length == -1:
            self.req = req
            self._done()
        else:
            self.client.finish(req, "other", f"response cut: {exc!r}")

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides

