"""The upstream side: one lean HTTP/1.1 client protocol per connection, pooled per target."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from time import monotonic
from typing import Protocol, cast

import httptools

from .errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamResetError
from .options import MAX_RESPONSE_HEADER_SIZE

log = logging.getLogger("dockyard.proxy")

MAX_IDLE_PER_TARGET = 256
# A target may have this many connections "opening" (connecting, or waiting for their first
# response head) at once, plus one per first head it has answered so far (TCP's slow start:
# the allowance doubles per round trip while it answers); more requests wait for one of them
# or for an idle connection. A fresh container at the switch otherwise gets a connection per
# request until it answers: hundreds, which overflow its accept queue (SYNs dropped, 1 s
# retransmits). An opening connection stops counting when its first head arrives, when it
# closes, or after OPENING_GRACE (a long poll). A target that answers (even one that closes
# every connection) soon has an allowance no load reaches.
MAX_OPENING_PER_TARGET = 8
OPENING_GRACE = 0.1
# Before a swap the new targets get as many connections as the old ones hold, up to this many.
WARM_MAX = 32


class ResponseHandler(Protocol):
    """What an UpstreamConnection reports to (the exchange of the current request)."""

    def on_response_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None: ...
    def on_continue(self) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_done(self) -> None: ...
    def on_upgrade(self, tail: bytes) -> None: ...
    def on_upstream_failed(self, exc: Exception) -> None: ...
    def flush(self) -> None: ...
    def upstream_pause_writing(self) -> None: ...
    def upstream_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to a target. Parses responses with llhttp and hands events to `handler`."""

    def __init__(self, pool: UpstreamPool, target: str) -> None:
        self.pool = pool
        self.max_head = pool.max_head
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.handler: ResponseHandler | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.got_bytes = False
        self.in_response = False  # a response is expected or being read
        self.interim = False
        self.reusable = True
        self.closed = False
        self.idle_since = 0.0
        self.uses = 0
        self.tunnel: asyncio.Transport | None = None  # WebSocket peer (client transport)
        self.tunnel_reads = 0  # data_received calls while tunnelling (tunnel_idle_timeout)
        self.in_head = False  # a response head is being read (counted against max_head)
        self.head_bytes = 0
        self.opening: asyncio.TimerHandle | None = None  # set until the first response head

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            self.tunnel_reads += 1
            tunnel.write(data)
            return
        handler = self.handler
        if handler is None or not self.in_response:
            # Bytes nobody asked for: the connection can't be trusted any more.
            self.reusable = False
            self.close()
            return
        self.got_bytes = True
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            handler.on_upgrade(data[offset:])
            return
        except httptools.HttpParserError as exc:
            self.reusable = False
            if self.in_response:
                cause = exc.__context__
                error = cause if isinstance(cause, UpstreamError) else UpstreamProtocolError(
                    self.target, f"bad response: {exc}")
                handler.on_upstream_failed(error)
            else:
                # The response was complete and more bytes followed (a second response, a body
                # on a 204, more than Content-Length): deliver the response, drop the rest, and
                # never reuse this connection (as nginx does).
                handler.flush()
            self.close()
            return
        if self.in_head and self.head_bytes > self.max_head:
            self.reusable = False
            handler.on_upstream_failed(UpstreamProtocolError(self.target, "response head too large"))
            self.close()
            return
        handler.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self.pool.discard(self)
        if self.opening is not None:
            self.pool.opened(self, answered=False)
        handler = self.handler
        if handler is not None and (self.in_response or self.tunnel is not None):
            handler.on_upstream_failed(UpstreamResetError(self.target, f"connection lost: {exc or 'closed'}"))

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_resume_writing()

    # -- httptools callbacks -------------------------------------------------------------
    # (no on_message_begin: headers and reason are reset when the head is complete, one call less)
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.in_response:
            raise UpstreamProtocolError(self.target, "a response nobody asked for")
        self.in_head = False
        if self.opening is not None:
            self.pool.opened(self, answered=True)
        headers = self.headers
        reason = self.reason
        self.headers = []
        self.reason = b""
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 103 Early Hints: not forwarded; 100 Continue when asked for
            if status == 100:
                assert self.handler is not None
                self.handler.on_continue()
            return
        if not parser.should_keep_alive():
            self.reusable = False
        assert self.handler is not None
        self.handler.on_response_head(status, reason, headers, self.reusable)

    def on_body(self, body: bytes) -> None:
        assert self.handler is not None
        self.handler.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            self.in_head = True
            self.head_bytes = 0
            return
        if self.in_response:
            self.in_response = False
            assert self.handler is not None
            self.handler.on_response_done()

    # -- used by the exchange --------------------------------------------------------------
    def begin(self, handler: ResponseHandler) -> None:
        self.handler = handler
        self.in_response = True
        self.in_head = True
        self.head_bytes = 0
        self.got_bytes = False
        self.interim = False
        self.uses += 1

    def end_without_body(self) -> None:
        """HEAD: llhttp can't know the response has no body, so start a fresh parser."""
        self.in_response = False
        self.parser = httptools.HttpResponseParser(self)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()


class UpstreamPool:
    """Idle keep-alive connections per target, LIFO, closed after `idle_timeout` unused.

    New connections are admitted `max_opening` (plus one per first head answered) at a time per
    target (see MAX_OPENING_PER_TARGET); a request over that waits in a FIFO and gets the next
    connection put back, or a free slot.
    """

    def __init__(
        self,
        connect_timeout: float,
        idle_timeout: float,
        max_idle: int = MAX_IDLE_PER_TARGET,
        max_opening: int = MAX_OPENING_PER_TARGET,
        opening_grace: float = OPENING_GRACE,
        max_head: int = MAX_RESPONSE_HEADER_SIZE,
    ) -> None:
        self.max_head = max_head
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.max_opening = max_opening
        self.opening_grace = opening_grace
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._opening: dict[str, int] = {}
        self._answered: dict[str, int] = {}  # first heads per target: raises its allowance
        self._waiters: dict[str, deque[asyncio.Future[UpstreamConnection | None]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def take(self, target: str) -> UpstreamConnection | None:
        idle = self._idle.get(target)
        if not idle:
            return None
        deadline = monotonic() - self.idle_timeout
        while idle:
            conn = idle.pop()
            if conn.closed or conn.idle_since < deadline:
                conn.close()
                continue
            return conn
        return None

    async def acquire(self, target: str) -> UpstreamConnection:
        """An idle connection; else a new one if a slot is free; else wait for either (FIFO),
        at most connect_timeout (then UpstreamConnectError, as for a connect that timed out)."""
        deadline = -1.0
        while True:
            conn = self.take(target)
            if conn is not None:
                return conn
            if self._opening.get(target, 0) < self.allowance(target):
                return await self.connect(target)
            loop = asyncio.get_running_loop()
            if deadline < 0:
                deadline = loop.time() + self.connect_timeout
            fut: asyncio.Future[UpstreamConnection | None] = loop.create_future()
            waiters = self._waiters.get(target)
            if waiters is None:
                waiters = self._waiters[target] = deque()
            waiters.append(fut)
            try:
                async with asyncio.timeout_at(deadline):
                    handed = await self._wait(target, fut)
            except TimeoutError:
                opening = self._opening.get(target, 0)
                raise UpstreamConnectError(
                    target, f"no connection within {self.connect_timeout:g}s ({opening} opening, none answered)"
                ) from None
            if handed is not None and not handed.closed:  # it may have closed while we woke
                return handed

    async def _wait(
        self, target: str, fut: asyncio.Future[UpstreamConnection | None]
    ) -> UpstreamConnection | None:
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # woken, then cancelled: pass it on
                got = fut.result()
                if got is not None:
                    self.put(got)
                else:
                    self._wake(target)
            raise

    async def connect(self, target: str) -> UpstreamConnection:
        """A new connection that holds one of the target's opening slots until it answers."""
        self._opening[target] = self._opening.get(target, 0) + 1
        try:
            proto = await self._create(target)
        except BaseException:
            self._release(target)
            raise
        if proto.closed:  # lost before we got it: connection_lost had no slot to give back
            self._release(target)
        else:
            proto.opening = asyncio.get_running_loop().call_later(self.opening_grace, self.opened, proto, False)
        return proto

    async def warm(self, target: str, count: int) -> int:
        """Before traffic is routed to `target`: open connections until `count` are idle in the
        pool, `max_opening` at a time, so the app (and Docker's port proxy) accept them before the
        first request would wait for that. Returns how many were opened."""
        opened = 0
        count = min(count, self.max_idle)
        while opened < count and self.idle_count(target) < count:
            batch = min(self.max_opening, count - self.idle_count(target), count - opened)
            results = await asyncio.gather(*(self._create(target) for _ in range(batch)), return_exceptions=True)
            conns = [r for r in results if isinstance(r, UpstreamConnection)]
            for conn in conns:
                self.put(conn)
            opened += len(conns)
            if len(conns) < batch:
                break  # the target refuses: leave it to the requests
        return opened

    async def _create(self, target: str) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        host, _, port = target.rpartition(":")
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, proto = await loop.create_connection(
                    lambda: UpstreamConnection(self, target), host.strip("[]"), int(port)
                )
        except TimeoutError as exc:
            raise UpstreamConnectError(target, "connect timed out") from exc
        except OSError as exc:
            raise UpstreamConnectError(target, f"connect failed: {exc}") from exc
        return proto

    def allowance(self, target: str) -> int:
        """How many connections to `target` may be opening at once now."""
        return self.max_opening + self._answered.get(target, 0)

    def opened(self, conn: UpstreamConnection, answered: bool) -> None:
        """`conn` got its first head (answered), or closed, or outgrew the grace: it no longer
        holds a slot."""
        timer = conn.opening
        if timer is None:
            return
        conn.opening = None
        timer.cancel()
        if answered:
            self._answered[conn.target] = self._answered.get(conn.target, 0) + 1
        self._release(conn.target)

    def _release(self, target: str) -> None:
        left = self._opening.get(target, 0) - 1
        if left > 0:
            self._opening[target] = left
        else:
            self._opening.pop(target, None)
        self._wake(target)

    def _wake(self, target: str) -> None:
        """Tell live waiters, one per free slot, to try again (take an idle connection or open one)."""
        free = self.allowance(target) - self._opening.get(target, 0)
        while free > 0 and self._hand(target, None):
            free -= 1

    def _hand(self, target: str, conn: UpstreamConnection | None) -> bool:
        """Give `conn` (None: a free slot) to the first live waiter for `target`; False if none."""
        waiters = self._waiters.get(target)
        found = False
        while waiters and not found:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                found = True
        if not waiters:
            self._waiters.pop(target, None)
        return found

    def put(self, conn: UpstreamConnection) -> None:
        conn.handler = None
        if conn.closed or not conn.reusable or self._closed:
            conn.close()
            return
        if self._waiters and self._hand(conn.target, conn):  # (usually nobody waits)
            return
        conn.idle_since = monotonic()
        idle = self._idle.get(conn.target)
        if idle is None:
            idle = self._idle[conn.target] = []
        if len(idle) >= self.max_idle:
            conn.close()
            return
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_timeout / 2, self._sweep)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.target)
        if idle and conn in idle:
            idle.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        deadline = monotonic() - self.idle_timeout
        left = 0
        for target, idle in list(self._idle.items()):
            keep = [c for c in idle if not c.closed and c.idle_since >= deadline]
            for c in idle:
                if c not in keep:
                    c.close()
            if keep:
                self._idle[target] = keep
                left += len(keep)
            else:
                del self._idle[target]
        if left and not self._closed:
            self._sweeper = loop.call_later(self.idle_timeout / 2, self._sweep)

    def close_target(self, target: str) -> None:
        self._answered.pop(target, None)
        for conn in self._idle.pop(target, []):
            conn.close()

    def idle_count(self, target: str) -> int:
        return len(self._idle.get(target, ()))

    def waiting(self, target: str) -> int:
        return sum(1 for f in self._waiters.get(target, ()) if not f.done())

    def close(self) -> None:
        self._closed = True
        for waiters in self._waiters.values():
            for fut in waiters:
                fut.cancel()
        self._waiters.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for target in list(self._idle):
            self.close_target(target)
