"""One client request end to end: route, claim a target, forward, stream the response back."""

from __future__ import annotations

import asyncio
import logging

from .downstream import Downstream
from .edge import CHALLENGE, REDIRECT, Edge, hsts_line
from .errors import (
    ClientRequestError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResetError,
    UpstreamTimeoutError,
)
from .forwarding import client_address
from .headers import NO_BODY_STATUSES, strip_response_headers
from .inflight import Flight
from .pages import MAINTENANCE, error_response
from .pages import reason as phrase
from .policy_auth import authorization
from .policy_buffer import ResponseBuffer, Spool
from .policy_compress import VARY_LINE, Encoder, accepted, compressible, rewrite, varies
from .policy_headers import request_lines, without
from .policy_redirects import canonical, redirect
from .policy_steps import PolicySteps
from .request import IDEMPOTENT, RequestHead
from .rollout import ReleaseStats
from .routes import Maintenance, Service, host_key, normal_path
from .stats import AppStats, log_access
from .upstream import UpstreamConnection

log = logging.getLogger("dockyard.proxy")

# Framing of the response towards the client.
NONE, LENGTH, CHUNKED, CLOSE = 0, 1, 2, 3
WS_CLOSE_GOING_AWAY_TO_CLIENT = b"\x88\x02\x03\xe9"  # unmasked close frame, code 1001
WS_CLOSE_GOING_AWAY_TO_UPSTREAM = b"\x88\x82\x00\x00\x00\x00\x03\xe9"  # masked (zero key)


class Exchange:
    """Created by the client connection when a request head is complete."""

    __slots__ = (
        "client", "method", "url", "version", "keep_alive", "head", "path", "has_body", "body_buf",
        "body_buffered", "body_received", "body_complete", "body_sent_any", "sink", "upstream", "app",
        "target", "flight", "status", "started", "finished", "framing", "until_eof", "out", "sent", "done",
        "deadline", "task", "cancel_reason", "tunnel_closed", "fast", "completed", "preferred", "host", "t0",
        "stats", "extra_headers", "route_path", "expecting", "release", "rstats", "service", "steps",
        "spool", "response_timeout", "body_timeout", "encoder", "rbuf", "body_limit",
    )

    def __init__(self, client: Downstream, method: bytes, url: bytes, version: str,
                 keep_alive: bool, head: RequestHead) -> None:
        self.client = client
        self.method = method
        self.url = url
        self.version = version
        self.keep_alive = keep_alive
        self.head = head
        q = url.find(b"?")
        self.path = (url if q < 0 else url[:q]).decode("latin-1")
        self.route_path = normal_path(self.path)  # what routing matches; `url` is forwarded as sent
        self.has_body = has_body = head.chunked or head.content_length > 0
        self.body_buf: list[bytes] = []
        self.body_buffered = 0
        self.body_received = 0
        self.body_complete = not has_body
        self.body_sent_any = False
        self.sink: UpstreamConnection | None = None
        self.upstream: UpstreamConnection | None = None
        self.app: str | None = None
        self.service: Service | None = None  # the route found (its error pages)
        self.target: str | None = None
        self.flight: Flight | None = None
        self.status = 0
        self.started = False
        self.finished = False
        self.framing = NONE
        self.until_eof = False
        self.out: list[bytes] = []
        self.sent = 0
        self.done: asyncio.Future[None] | None = None
        self.deadline = 0.0  # response head due (loop.time()), 0.0: none; checked by DeadlineSweep
        self.task: asyncio.Task[None] | None = None
        self.cancel_reason = ""
        self.tunnel_closed: asyncio.Future[None] | None = None
        self.fast = False  # forwarded from callbacks only (no task), see start()
        self.completed = False
        self.preferred: str | None = None
        self.host = ""
        self.t0 = 0.0
        self.stats: AppStats | None = None
        self.extra_headers = b""  # response headers added by proxy.edge (HSTS)
        self.expecting = False  # Expect: 100-continue was forwarded: relay the app's 100
        self.release = ""  # the release a rollout gave this request (proxy/rollout.py)
        self.rstats: ReleaseStats | None = None
        self.steps: PolicySteps | None = None  # the app's policy (proxy/policy.py), once routed
        self.spool: Spool | None = None  # request buffering (policy_buffer.py)
        self.response_timeout = client.options.upstream_response_timeout  # a policy may override
        self.body_timeout = 0.0  # a policy's client_body_timeout (0.0: the proxy's)
        self.encoder: Encoder | None = None  # compress (policy_compress.py)
        self.rbuf: ResponseBuffer | None = None  # buffer_responses (policy_buffer.py)
        # The routed app's max_body_size (else the proxy's), known at the head so that the
        # connection holds every body to it, chunked or not, buffered or not (0: no limit).
        self.body_limit = client.options.max_body_size
        if has_body:
            routed = client.state.table.lookup(host_key(head.host), self.route_path)
            if routed is not None and routed.steps is not None and routed.steps.max_body_size >= 0:
                self.body_limit = routed.steps.max_body_size

    # -- request body, fed by the client connection ------------------------------------------
    def feed_body(self, data: bytes) -> None:
        self.body_received += len(data)
        if self.spool is not None:
            self.spool.write(data)  # held to body_limit by the connection (server.on_body)
            return
        sink = self.sink
        if sink is not None:
            self.body_sent_any = True
            sink.write(b"%x\r\n%s\r\n" % (len(data), data) if self.head.chunked else data)
            return
        self.body_buf.append(data)
        self.body_buffered += len(data)
        if self.body_buffered > 256 * 1024:
            self.client.pause("body")

    def body_done(self) -> None:
        self.body_complete = True
        if self.spool is not None:
            self.spool.complete()
        sink = self.sink
        if sink is not None:
            if self.head.chunked:
                sink.write(b"0\r\n\r\n")
            self._arm_response_timer()

    # -- the coroutine ---------------------------------------------------------------------------
    def start(self) -> bool:
        """Fast path, no task: route, claim and send on a pooled connection from callbacks.

        Returns False when the request needs the coroutine (`run`): upgrades, unknown hosts,
        no target, or no idle pooled connection (a connect must be awaited).
        """
        client = self.client
        proxy = client.state
        self.t0 = client.loop.time()
        host = self.host = host_key(self.head.host)
        edge = proxy.edge
        if edge is not None and self._edge(edge):
            return True  # answered by the proxy itself (ACME challenge, https redirect)
        if self.head.upgrade is not None:
            return False
        service = proxy.table.lookup(host, self.route_path)
        if service is None or service.maintenance is not None or service.pages:
            return False  # 404, maintenance and an app's own error pages: in run()
        if service.rollout is not None:
            service = self._narrow(service)
        steps = service.steps
        if steps is not None and (steps.every_request or self.has_body):
            return False  # the policy's steps may await (auth, buffering): run() applies them
        self.steps = steps  # what the response callbacks apply (compress)
        target = proxy.balancer.pick(service)
        if target is None:
            return False
        app = self.app = service.app
        stats = self.stats = proxy.app_stats(app)
        stats.inflight += 1
        conn = proxy.pool.take(target)
        if conn is None:
            self.preferred = target
            return False
        self.target = target
        self.flight = proxy.tracker.claim(target, app, self.cancel_flight)
        self.fast = True
        self._send(conn)
        return True

    async def run(self, tried: list[str] | None = None) -> None:
        proxy = self.client.state
        if not self.t0:
            self.t0 = proxy.loop.time()
            self.host = host_key(self.head.host)
        host = self.host
        try:
            service = proxy.table.lookup(host, self.route_path)
            if service is None:
                self.send_error(404, proxy.table.lookup_host(host))
                return
            self.service = service
            if self.stats is None:
                self.app = service.app
                self.stats = proxy.app_stats(service.app)
                self.stats.inflight += 1
            if service.maintenance is not None:  # before a target is claimed
                self._send_maintenance(service.maintenance, service)
                return
            steps = service.steps
            if steps is not None and not tried and await self._apply_policy(service, steps):
                return  # answered by a policy (403, 401, redirect, 413)
            await self._forward(service, host, tried or [])
        except asyncio.CancelledError:
            self._cancelled()
        except Exception:
            log.exception("Request failed host=%s path=%s", host, self.path)
            if self.started:
                self.client.abort()
            else:
                self.send_error(502, self.service)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self.completed:
            return
        self.completed = True
        if self.spool is not None:
            self.spool.close()
        if self.rbuf is not None:
            self.rbuf.close()
        client = self.client
        elapsed = client.loop.time() - self.t0
        status = self.status or 499
        stats = self.stats
        if stats is not None:
            stats.inflight -= 1
            stats.record(status, elapsed)
        if self.rstats is not None:
            self.rstats.record(status, elapsed)
        if client.options.access_log:
            log_access(app=self.app, method=self.method, host=self.host, path=self.url, status=status,
                       seconds=elapsed, target=self.target, client=self.client_ip(),
                       request_id=self.head.request_id, sent=self.sent)
        client.exchange_finished(self)

    def _narrow(self, service: Service) -> Service:
        """A rollout: the service narrowed to the release this request goes to (rollout.py)."""
        rollout = service.rollout
        assert rollout is not None
        rollouts = self.client.state.rollouts
        narrowed, release, cookie = rollouts.choose(service.app, rollout, self.head.lines, self.release)
        if release != self.release:
            self.release = release
            self.rstats = rollouts.counters(service.app, release)
        if cookie:
            self.extra_headers += cookie
        return narrowed

    def client_ip(self) -> str:
        """The client's address for logs: the peer, or behind trusted proxies the right-most
        untrusted X-Forwarded-For entry."""
        client = self.client
        if not client.trusted:
            return client.peer_str
        return client_address(self.head.xff, client.peer_str, client.state.trusted)

    # -- answers of the edge (ACME challenges, https redirects, HSTS) ---------------------------
    def _edge(self, edge: Edge) -> bool:
        service = self.client.state.table.lookup(self.host, self.route_path)
        if self.client.scheme == b"https":
            if service is not None and service.hsts is not None:
                self.extra_headers = hsts_line(service.hsts)
            return False
        decision = edge.answer(service, self.host, self.route_path, self.url)
        if decision is None:
            return False
        status, data = decision
        # Keep the connection only when the request body (if any) was read in full.
        keep = self.keep_alive = self.keep_alive and self.body_complete and not self.client.closing
        connection = b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n"
        if status == REDIRECT:
            response = (b"HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n%s\r\n"
                        % (data, connection))
        elif status == CHALLENGE:
            response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                        b"Cache-Control: no-store\r\n%s\r\n%s" % (len(data), connection, data))
        else:
            response = error_response(404, self.head.accept, keep_alive=keep, request_id=self.head.request_id)
        self.status = status
        self.started = True
        if self.method == b"HEAD":
            response = response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        self.client.write(response)
        self._finish()
        return True

    # -- per-app policies (proxy/policy*.py), in the order docs/proxy.md gives ----------------
    async def _apply_policy(self, service: Service, steps: PolicySteps) -> bool:
        """Apply the app's policy before forwarding; True when it answered the request itself."""
        policy = steps.policy
        client = self.client
        self.steps = steps
        if steps.response_timeout:
            self.response_timeout = steps.response_timeout
        if steps.body_timeout:
            self.body_timeout = steps.body_timeout
        if steps.response_lines:
            self.extra_headers += steps.response_lines
        if steps.hsts_line and client.scheme == b"https" and service.hsts is None:
            self.extra_headers += steps.hsts_line
        # 1. redirects: canonical host, then the app's redirects
        location = canonical(policy, self.host, self.url, client.scheme)
        if location is not None:
            self._redirect(301, location)
            return True
        if policy.redirects:
            found = redirect(policy, self.route_path, self.url)
            if found is not None:
                self._redirect(found[0], found[1])
                return True
        # 2. IP allow/deny on the real client address
        if steps.access is not None and not steps.access.admits(self.client_ip()):
            self.send_error(403)
            return True
        # 3. basic auth
        auth = steps.auth
        if auth is not None and not auth.exempt(self.route_path):
            if not await auth.check(authorization(self.head.lines)):
                self.extra_headers += auth.realm_line
                self.send_error(401)
                return True
        # (the app's max_body_size was applied at the head: Exchange.body_limit)
        # 4. the request as the app sees it: prefix stripped, headers set
        if policy.strip_prefix and service.path_prefix != "/":
            self._strip_prefix(service.path_prefix)
        if steps.request_lines:
            self.head.lines = request_lines(self.head.lines, steps.request_names, steps.request_lines)
        # 5. request buffering: the whole body before a target is picked
        if steps.buffer and self.has_body and self.head.upgrade is None:
            try:
                await self._buffer_body(steps)
            except ClientRequestError as exc:
                self.send_error(exc.status)
                return True
        return False

    def _redirect(self, status: int, location: bytes) -> None:
        keep = self.keep_alive = self.keep_alive and self.body_complete and not self.client.closing
        self.status = status
        self.started = True
        self.client.write(b"HTTP/1.1 %d %s\r\nLocation: %s\r\nContent-Length: 0\r\n%s%s\r\n" % (
            status, phrase(status).encode("latin-1"), location, self.extra_headers,
            b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n"))

    def _strip_prefix(self, prefix: str) -> None:
        raw = self.url
        pb = prefix.encode("latin-1")
        if raw.startswith(pb) and (len(raw) == len(pb) or raw[len(pb):len(pb) + 1] in (b"/", b"?")):
            rest = raw[len(pb):]
        else:  # the client spelled the prefix another way (`/%61pi`): use the normalized path
            q = raw.find(b"?")
            rest = self.route_path[len(prefix):].encode("latin-1") + (raw[q:] if q >= 0 else b"")
        if not rest.startswith(b"/"):
            rest = b"/" + rest
        self.url = rest
        self.head.lines.append(b"X-Forwarded-Prefix: %s\r\n" % pb)

    async def _buffer_body(self, steps: PolicySteps) -> None:
        """Read the whole body into a Spool (memory, then a 0600 temporary file)."""
        client = self.client
        spool = self.spool = Spool(steps.policy.request_buffer_memory)
        for chunk in self.body_buf:
            spool.write(chunk)
        self.body_buf = []
        self.body_buffered = 0
        client.resume("body")
        if not self.body_complete:
            if self.head.expect_continue and self.version == "1.1":
                client.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # we take the body, not the app
            spool.waiter = client.loop.create_future()
            await spool.waiter
        self.head.chunked = False  # forwarded with its length, as nginx does
        self.head.content_length = spool.size
        self.head.expect_continue = False

    async def _send_spool(self, conn: UpstreamConnection) -> None:
        """Stream a buffered body to the app, following its pace (256 KiB in its write buffer)."""
        spool = self.spool
        assert spool is not None
        self.body_sent_any = True
        self.deadline = 0.0  # the response timer starts once the body is sent
        done = self.done
        for data in spool.chunks():
            if conn.closed or (done is not None and done.done()):
                return
            conn.write(data)
            transport = conn.transport
            while (transport is not None and not conn.closed and transport.get_write_buffer_size() > 256 * 1024
                   and not (done is not None and done.done())):
                await asyncio.sleep(0.001)
        self.deadline = 0.0
        self._arm_response_timer()

    # -- fast path completion (callbacks) -------------------------------------------------------
    def _fast_done(self) -> None:
        conn = self.upstream
        client = self.client
        self.sink = None
        self.deadline = 0.0
        if client.paused:
            client.resume("upstream")
        if self.flight is not None:
            client.state.tracker.release(self.flight)
            self.flight = None
        if conn is not None:
            if not self.body_complete:
                conn.reusable = False
                self.keep_alive = False
            client.state.pool.put(conn)
            self.upstream = None
        self._finish()

    def _fast_failed(self, exc: UpstreamError) -> None:
        if self.completed or not self.fast:
            return
        self.fast = False
        self.sink = None
        self.deadline = 0.0
        self.client.resume("upstream")
        conn = self.upstream
        if self.flight is not None:
            self.client.state.tracker.release(self.flight)
            self.flight = None
        retry = self._retryable(exc, [])
        if self.rstats is not None:
            self.rstats.failures += 1
        if self.target is not None and self.service is not None:
            self.client.state.target_failed(self.service.app, self.target, exc)
        if conn is not None:
            conn.handler = None
            conn.abort()
        if retry and self.target is not None and not self.client.closed:
            log.info("Retrying request target=%s error=%s", self.target, exc)
            self.task = self.client.state.loop.create_task(self.run([self.target]))
            self.client.track(self.task)
            return
        if self.started:
            self.client.abort()
            self.status = self.status or 502
        else:
            self.send_error(exc.status)
        self._finish()

    def _fast_cancel(self, reason: str) -> None:
        """Drain timeout or client gone while on the fast path."""
        if self.completed or not self.fast:
            return
        self.fast = False
        self.cancel_reason = reason
        self.deadline = 0.0
        if self.upstream is not None:
            self.upstream.handler = None
        self._cancelled()
        if self.flight is not None:
            self.client.state.tracker.release(self.flight)
            self.flight = None
        self._finish()

    def client_gone(self) -> None:
        if self.fast:
            self._fast_cancel("client")
        elif self.task is not None and not self.task.done():
            self.cancel_reason = "client"
            self.task.cancel()

    def _cancelled(self) -> None:
        """Cancelled by a drain or stop timeout (-> 504 when nothing was sent) or a gone client."""
        if self.upstream is not None:
            self.upstream.abort()
        if self.cancel_reason == "client":
            return
        if self.started:
            self.client.abort()
        else:
            self.keep_alive = False
            self.send_error(504, self.service)

    async def _forward(self, service: Service, host: str, tried: list[str]) -> None:
        proxy = self.client.state
        while True:
            if service.rollout is not None:
                service = self._narrow(service)
            target, self.preferred = self.preferred, None
            if target is None or target not in service.targets or proxy.tracker.is_draining(target):
                target = proxy.balancer.pick(service, tried)
            if target is None and tried:
                target = proxy.balancer.pick(service)
            if target is None:
                self.send_error(503, service)
                return
            self.target = target
            # Claim and register together: nothing awaits between the lookup and this line.
            flight = self.flight = proxy.tracker.claim(target, service.app, self.cancel_flight)
            retry = False
            try:
                conn = await proxy.pool.acquire(target)
                await self._exchange(conn)
            except UpstreamError as exc:
                if self.rstats is not None:
                    self.rstats.failures += 1
                proxy.target_failed(service.app, target, exc)
                if self._retryable(exc, tried):
                    log.info("Retrying request target=%s error=%s", target, exc)
                    tried.append(target)
                    retry = True
                else:
                    log.warning("Upstream failed app=%s %s", service.app, exc)
                    if self.started:
                        self.client.abort()
                        self.status = 502
                    else:
                        self.send_error(exc.status, service)
            finally:
                proxy.tracker.release(flight)
                self.flight = None
            if not retry:
                return
            # A retry follows the current table: after a swap it never goes to old targets.
            service = proxy.table.lookup(host, self.route_path) or service

    def _retryable(self, exc: UpstreamError, tried: list[str]) -> bool:
        if tried or self.started or self.head.upgrade is not None:
            return False
        if isinstance(exc, UpstreamConnectError):
            return True  # nothing was sent: safe for every method
        return (
            isinstance(exc, UpstreamResetError)
            and self.method in IDEMPOTENT
            and (not self.body_sent_any or self.spool is not None)  # a buffered body is sent again whole
            and self.upstream is not None
            and not self.upstream.got_bytes
        )

    async def _exchange(self, conn: UpstreamConnection) -> None:
        done = self.done = self.client.state.loop.create_future()
        self._send(conn)
        try:
            if self.spool is not None and self.spool.size:
                await self._send_spool(conn)
            await done
        except BaseException:
            conn.abort()
            raise
        finally:
            self.sink = None
            self.deadline = 0.0
            self.client.resume("upstream")
        if self.tunnel_closed is not None:
            await self._tunnel()
            return
        if not self.body_complete:
            conn.reusable = False
            self.keep_alive = False
        self.client.state.pool.put(conn)
        self.upstream = None
        rbuf = self.rbuf
        if rbuf is not None and rbuf.size:  # the app is free; the client takes the rest at its pace
            rbuf.waiter = self.client.loop.create_future()
            self._pump()
            await rbuf.waiter

    def _send(self, conn: UpstreamConnection) -> None:
        """Write the request head (and what body is buffered); the rest streams via feed_body."""
        self.upstream = conn
        conn.begin(self)
        head = self._upstream_head()
        if self.body_buf:
            self.body_sent_any = True
            if self.head.chunked:
                parts = [head]
                for chunk in self.body_buf:
                    parts.append(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                head = b"".join(parts)
            else:
                head = b"".join([head, *self.body_buf])
            self.body_buf = []
            self.body_buffered = 0
            self.client.resume("body")
        if self.body_complete:
            if self.head.chunked:
                head += b"0\r\n\r\n"
            conn.write(head)
            if self.fast:
                self.deadline = self.t0 + self.response_timeout
            else:
                self._arm_response_timer()
        else:
            conn.write(head)
            self.sink = conn

    def _upstream_head(self) -> bytes:
        h = self.head
        client = self.client
        peer = client.peer
        if client.trusted:  # a trusted proxy's X-Forwarded-For and -Proto are kept
            xff = peer if h.xff is None else h.xff + b", " + peer
            proto = h.proto if h.proto is not None else client.scheme
            real = self.client_ip().encode("latin-1")
        else:  # the client's own X-Forwarded-* never reach the app (request.py drops them)
            xff = real = peer
            proto = client.scheme
        parts = [self.method, b" ", self.url, b" HTTP/1.1\r\n", *h.lines,
                 b"X-Forwarded-For: %s\r\nX-Real-IP: %s\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Host: %s\r\n"
                 b"X-Forwarded-Port: %s\r\nX-Request-Id: %s\r\n"
                 % (xff, real, proto, h.host, client.local_port, h.request_id)]
        if h.expect_continue and not self.body_complete and self.version == "1.1":
            # The app decides (100 or a final answer before the body); its 100 is relayed.
            self.expecting = True
            parts.append(b"Expect: 100-continue\r\n")
        if h.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        elif h.content_length >= 0:
            parts.append(b"Content-Length: %d\r\n" % h.content_length)
        if h.upgrade is not None:
            parts.append(b"Connection: Upgrade\r\nUpgrade: %s\r\n" % h.upgrade)
        parts.append(b"\r\n")
        return b"".join(parts)

    def _arm_response_timer(self) -> None:
        if not self.deadline and not self.started and (
            self.fast or (self.done is not None and not self.done.done())
        ):
            self.deadline = self.client.loop.time() + self.response_timeout

    def _timed_out(self) -> None:
        if self.fast and not self.started:
            self._fast_failed(UpstreamTimeoutError(self.target or "?", "no response head in time"))
            return
        if not self.started and self.done is not None and not self.done.done():
            self.done.set_exception(UpstreamTimeoutError(self.target or "?", "no response head in time"))

    # -- ResponseHandler (called from the upstream protocol) -----------------------------------
    def on_response_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                         keep_alive: bool) -> None:
        steps = self.steps
        if steps is not None and steps.response_names:  # the policy's headers replace the app's
            headers = without(headers, steps.response_names)
        try:
            lines, length, chunked = strip_response_headers(headers)
        except ValueError as exc:  # a transfer-coding other than chunked (gzip, ...)
            self.keep_alive = False
            raise UpstreamProtocolError(self.target or "?", str(exc)) from None
        out_length = length  # the length towards the client (-1 once compressed)
        if steps is not None and steps.compress and self.method != b"HEAD" and compressible(
                status, headers, steps.compress_min_size):
            coding = accepted(self.head.lines)
            if coding:
                self.encoder = Encoder(coding)
                lines = strip_response_headers(rewrite(headers, coding))[0]
                out_length = -1
            elif not varies(headers):  # caches must know another client may get it compressed
                lines.append(VARY_LINE)
        if (steps is not None and steps.buffer_responses and status != 101 and self.method != b"HEAD"
                and not _event_stream(headers)):
            self.rbuf = ResponseBuffer(steps.policy.request_buffer_memory)
        upgrade = b""
        if status == 101:
            upgrade = _upgrade_token(headers)
            if self.head.upgrade is None or upgrade.lower() != self.head.upgrade.lower():
                # Unsolicited (or another protocol): the client connection must not become a
                # tunnel to this app.
                self.keep_alive = False
                raise UpstreamProtocolError(self.target or "?", "101 for a request that asked no such upgrade")
        self.started = True
        self.status = status
        self.deadline = 0.0
        if self.extra_headers:
            lines.append(self.extra_headers)
        client_ka = self.keep_alive and not self.client.closing
        if status == 101:
            lines.append(b"Connection: Upgrade\r\nUpgrade: %s\r\n" % upgrade)
            self.out.append(b"HTTP/1.1 101 %s\r\n%s\r\n" % (reason or b"Switching Protocols", b"".join(lines)))
            return
        if self.head.upgrade is not None:
            client_ka = False  # the client parser is past an Upgrade: no more requests on it
        if self.method == b"HEAD" or status in NO_BODY_STATUSES:
            self.framing = NONE
        elif out_length >= 0:
            self.framing = LENGTH
        elif self.version == "1.1":
            self.framing = CHUNKED
            lines.append(b"Transfer-Encoding: chunked\r\n")
        else:
            self.framing = CLOSE
            client_ka = False
        self.until_eof = length < 0 and not chunked and self.framing != NONE
        if not client_ka:
            lines.append(b"Connection: close\r\n")
            self.keep_alive = False
        elif self.version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
        self.out.append(b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, b"".join(lines)))
        if self.method == b"HEAD":
            assert self.upstream is not None
            self.upstream.end_without_body()
            self.on_response_done()

    def on_continue(self) -> None:
        """The app sent 100 Continue: relay it once, when the client asked for it."""
        if self.expecting and not self.started:
            self.expecting = False
            self.client.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_response_body(self, data: bytes) -> None:
        self.sent += len(data)
        if self.encoder is not None:
            data = self.encoder.feed(data)
            if not data:
                return
        if self.framing == CHUNKED:
            self.out.append(b"%x\r\n" % len(data))
            self.out.append(data)
            self.out.append(b"\r\n")
        elif self.framing != NONE:
            self.out.append(data)

    def on_response_done(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.encoder is not None:
            tail = self.encoder.finish()
            self.encoder = None
            if tail:
                self.on_response_body(tail)
        if self.framing == CHUNKED:
            self.out.append(b"0\r\n\r\n")
        if self.fast:
            return  # completed in flush(), after the bytes went out
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def flush(self) -> None:
        out = self.out
        if out:
            client = self.client
            transport = client.transport
            if transport is not None and not client.closed:
                rbuf = self.rbuf
                if rbuf is not None and (rbuf.size or client.write_paused):
                    rbuf.write(out[0] if len(out) == 1 else b"".join(out))  # the client is behind
                else:
                    transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self.fast and self.finished and not self.completed:
            self.fast = False
            self._fast_done()

    def on_upstream_failed(self, exc: Exception) -> None:
        if self.completed:
            return
        if self.fast and not (self.started and self.until_eof):
            assert isinstance(exc, UpstreamError)
            self._fast_failed(exc)
            return
        if self.tunnel_closed is not None:
            if not self.tunnel_closed.done():
                self.tunnel_closed.set_result(None)
            return
        if self.started and self.until_eof and not self.finished:
            self.on_response_done()
            self.flush()
            return
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)

    def upstream_pause_writing(self) -> None:
        self.client.pause("upstream")

    def upstream_resume_writing(self) -> None:
        self.client.resume("upstream")

    def client_pause_writing(self) -> None:
        if self.rbuf is not None:
            return  # buffer_responses: keep reading the app, hold what the client cannot take
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def client_resume_writing(self) -> None:
        if self.rbuf is not None:
            self._pump()
            return
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def _pump(self) -> None:
        """buffer_responses: give the client what it can take from the buffer (until its
        transport pauses us again); wake _exchange when the buffer is empty."""
        rbuf = self.rbuf
        client = self.client
        transport = client.transport
        if rbuf is None or transport is None:
            return
        while not client.write_paused and not client.closed:
            data = rbuf.read()
            if not data:
                rbuf.emptied()
                return
            transport.write(data)

    # -- WebSocket -----------------------------------------------------------------------------
    def on_upgrade(self, tail: bytes) -> None:
        conn = self.upstream
        assert conn is not None and conn.transport is not None
        if self.status != 101:
            conn.abort()
            self.on_upstream_failed(UpstreamResetError(self.target or "?", "upgrade without 101"))
            return
        self.tunnel_closed = self.client.state.loop.create_future()
        if self.flight is not None:
            self.flight.websocket = True
        self.flush()
        if tail:
            self.client.write(tail)
        conn.tunnel = self.client.start_tunnel(self, conn.transport)
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def _tunnel(self) -> None:
        assert self.tunnel_closed is not None
        try:
            await self.tunnel_closed
        finally:
            if self.upstream is not None:
                self.upstream.close()
            self.client.close()

    def tunnel_lost(self) -> None:
        if self.tunnel_closed is not None and not self.tunnel_closed.done():
            self.tunnel_closed.set_result(None)

    def cancel_flight(self) -> None:
        """Called by a drain at its timeout."""
        if self.tunnel_closed is not None:
            self.client.write(WS_CLOSE_GOING_AWAY_TO_CLIENT)
            if self.upstream is not None and not self.upstream.closed:
                self.upstream.write(WS_CLOSE_GOING_AWAY_TO_UPSTREAM)
            self.tunnel_lost()
            return
        if self.fast:
            self._fast_cancel("drain")
            return
        self.cancel_reason = "drain"
        if self.task is not None:
            self.task.cancel()

    # -- errors ------------------------------------------------------------------------------
    def _send_maintenance(self, mode: Maintenance, service: Service) -> None:
        retry = b"Retry-After: %d\r\n" % mode.retry_after if mode.retry_after is not None else b""
        page = None if mode.message else service.page(503)
        self.send_error(503, None, message=mode.message or MAINTENANCE, page=page, extra=retry)

    def send_error(self, status: int, service: Service | None = None, *, message: str | None = None,
                   page: bytes | None = None, extra: bytes = b"") -> None:
        """The proxy's own answer `status`; `service`: the app's own page for it, when it has one."""
        if page is None and service is not None and service.pages:
            page = service.page(status)
        self.status = status
        if self.started:
            self.client.abort()
            return
        self.started = True
        if not self.body_complete:
            self.keep_alive = False
        keep = self.keep_alive and not self.client.closing
        self.keep_alive = keep
        self.client.write(error_response(status, self.head.accept, keep_alive=keep,
                                         head=self.method == b"HEAD", request_id=self.head.request_id,
                                         extra=self.extra_headers + extra, message=message, page=page))


def _upgrade_token(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name.lower() == b"upgrade":
            return value.strip()
    return b""


def _event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.strip().lower().startswith(b"text/event-stream")
    return False
