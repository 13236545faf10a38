"""The data plane as the supervisor drives it: `[proxy] workers` proxy processes (proxy/worker.py).

`WorkerPool` is the daemon's `RouteSink` (deploy/fleet.py) when `workers` > 0. It keeps the
route table (app -> the arguments of `set_app`, validated here exactly as the in-process proxy
validates them) and sends the whole table to every worker on each change, numbered by `seq`;
`settled()` waits until every serving worker acknowledged the last one. It binds (or is handed)
the listening sockets and passes the same sockets to every worker: one accept queue, so a
worker that dies loses no queued connection, and takeover and socket activation hand over
exactly the sockets they did before. A worker that exits is started again at once with the
current table; it accepts only once it has it. Figures (stats, in-flight, connections) are
polled every `POLL_PERIOD` and summed; the counters of workers that exited are kept, so the
Prometheus counters never go back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from proxy import ProxyOptions, RouteTable, route_message
from proxy.policy import Policy
from proxy.routes import Maintenance, Route, Service, make_service
from supervisor.daemon.dataplane.feeds import CertFeed, EdgeFeed
from supervisor.daemon.dataplane.handle import AdoptedProcess, WorkerGone, WorkerHandle
from supervisor.ops.paths import PACKAGE_ROOT

log = logging.getLogger("dockyard.supervisor")
POLL_PERIOD = 0.5  # seconds between two collections of the workers' figures
ACK_TIMEOUT = 5.0  # a worker that has not installed a table by then is killed (and replaced)
RESPAWN_PAUSE = 1.0  # pause before replacing a worker that never served, or died quickly twice
REQUEST_TIMEOUT = 5.0


def add_stats(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Sum the numbers of `more` into `total`, recursively (one app's stats snapshot)."""
    for key, value in more.items():
        if isinstance(value, dict):
            add_stats(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


class WorkerPool:
    def __init__(self, options: ProxyOptions, count: int, directory: Path) -> None:
        self.options = options
        self.count = count
        self.dir = directory
        self._services: dict[str, Service] = {}
        self._table = RouteTable()  # what the workers are sent (they may still be installing it)
        self._routes: dict[str, dict[str, Any]] = {}  # app -> the table message's entry
        self._seq = 0
        self._sent_at: dict[int, float] = {0: time.monotonic()}
        self._workers: dict[int, WorkerHandle] = {}
        self._listen: socket.socket | None = None
        self._tls: socket.socket | None = None
        self._certs: CertFeed | None = None
        self._edge: EdgeFeed | None = None
        self._gone: dict[str, dict[str, Any]] = {}  # counters of workers that exited
        self._gone_releases: dict[str, dict[str, dict[str, Any]]] = {}
        self._respawn = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.tls_port = 0
        self.respawned = 0
        self._quick = False  # the last worker that exited had lived less than RESPAWN_PAUSE
        self._on_target_failed: Callable[[str, str], None] | None = None

    # -- the route table (RouteSink) ---------------------------------------------------------------
    def set_app(self, app: str, hosts: Sequence[str], targets: Sequence[str], *, path_prefix: str = "/",
                balance: str = "round_robin", tls_redirect: bool = False, hsts: int | None = None,
                release: str = "", canary_release: str = "", canary_targets: Sequence[str] = (),
                canary_percent: float = 0.0, maintenance: Maintenance | None = None,
                error_pages: Mapping[int, bytes] | None = None, policy: Policy | None = None) -> None:
        service = make_service(app, hosts, targets, path_prefix, balance, tls_redirect, hsts,
                               release, canary_release, canary_targets, canary_percent,
                               maintenance, error_pages, policy=policy)
        services = {**self._services, app: service}
        self._table = RouteTable.build(services)  # a conflict raises here, before anything changes
        self._services = services
        self._routes[app] = route_message.entry(service)  # each worker builds the same Service
        log.info("Routed app=%s hosts=%s prefix=%s targets=%s seq=%d", app, ",".join(service.hosts),
                 service.path_prefix, ",".join(service.targets), self._seq + 1)
        self._send_table()

    def replace_routes(self, routes: Mapping[str, Route | None]) -> None:
        """Several apps' routes in one table message (a reload moving a host between apps): the
        whole table is built and checked first, so a conflict changes nothing, in no worker."""
        changes = {app: None if r is None else r.service(app) for app, r in routes.items()}
        services = {app: s for app, s in {**self._services, **changes}.items() if s is not None}
        self._table = RouteTable.build(services)  # a conflict raises here, before anything changes
        self._services = services
        for app, service in changes.items():
            if service is None:
                self._routes.pop(app, None)
            else:
                self._routes[app] = route_message.entry(service)
        log.info("Routed apps=%s removed=%s seq=%d", ",".join(a for a, s in changes.items() if s),
                 ",".join(a for a, s in changes.items() if s is None), self._seq + 1)
        self._send_table()

    def remove_app(self, app: str) -> None:
        self._routes.pop(app, None)
        if self._services.pop(app, None) is not None:
            self._table = RouteTable.build(self._services)
            log.info("Unrouted app=%s seq=%d", app, self._seq + 1)
            self._send_table()

    @property
    def table(self) -> RouteTable:
        """The last table sent (`settled()` waits until every worker has it)."""
        return self._table

    def _message(self) -> dict[str, Any]:
        return {"op": "table", "seq": self._seq, "apps": list(self._routes.values())}

    def _send_table(self) -> None:
        self._seq += 1
        self._sent_at[self._seq] = time.monotonic()
        for old in [s for s in self._sent_at if s < self._seq - 64]:
            del self._sent_at[old]
        self._broadcast(self._message())

    def _broadcast(self, message: dict[str, Any]) -> None:
        """Send to every worker with a channel (one that is starting gets it with its first table)."""
        for w in list(self._workers.values()):
            if w.serving:
                w.send(message).add_done_callback(_ignore)

    def on_target_failed(self, callback: Callable[[str, str], None] | None) -> None:
        """Passive health: `callback(app, target)` when a worker could not connect to a target."""
        self._on_target_failed = callback

    def _event(self, message: dict[str, Any]) -> None:
        if message.get("event") == "target_failed" and self._on_target_failed is not None:
            self._on_target_failed(str(message.get("app", "")), str(message.get("target", "")))

    async def settled(self) -> float:
        """Wait until every serving worker installed the last table; return seconds to the slowest
        ack. A worker that does not ack within ACK_TIMEOUT is killed: its replacement starts with
        the current table, so no worker serves an older one once this returns."""
        seq = self._seq
        sent = self._sent_at.get(seq, time.monotonic())
        deadline = sent + ACK_TIMEOUT
        while True:
            late = [w for w in self._workers.values() if w.serving and w.acked < seq and w.proc.returncode is None]
            if not late:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for w in late:
                    log.error("worker did not install the table pid=%d seq=%d: killing it", w.pid, seq)
                    w.kill()
                    w.serving = False
                break
            w = late[0]
            w.acks.clear()
            if w.acked < seq:
                try:
                    await asyncio.wait_for(w.acks.wait(), remaining)
                except TimeoutError:
                    pass
        acked = [w.acked_at for w in self._workers.values() if w.serving and w.acked >= seq]
        return round(max(0.0, max(acked, default=sent) - sent), 6)

    # -- drain, warm, figures ----------------------------------------------------------------------
    async def _each(self, message: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        workers = [w for w in self._workers.values() if w.serving]
        answers = await asyncio.gather(*(w.request(message, timeout) for w in workers), return_exceptions=True)
        return [a for a in answers if isinstance(a, dict)]

    async def drain(self, targets: Iterable[str], timeout: float) -> int:
        wanted = list(targets)
        log.info("Draining targets=%s timeout=%s workers=%d", ",".join(wanted), timeout, len(self._workers))
        answers = await self._each({"op": "drain", "targets": wanted, "timeout": timeout}, timeout + 3.0)
        cancelled = sum(int(a.get("cancelled", 0)) for a in answers)
        log.info("Drained targets=%s cancelled=%d", ",".join(wanted), cancelled)
        return cancelled

    async def warm(self, targets: Sequence[str], replacing: Sequence[str]) -> int:
        answers = await self._each({"op": "warm", "targets": list(targets), "replacing": list(replacing)},
                                   REQUEST_TIMEOUT + self.options.upstream_connect_timeout)
        return sum(int(a.get("opened", 0)) for a in answers)

    async def refresh(self) -> None:
        """Collect every worker's figures now."""
        workers = [w for w in self._workers.values() if w.serving]
        answers = await asyncio.gather(*(w.request({"op": "stats"}, REQUEST_TIMEOUT) for w in workers),
                                       return_exceptions=True)
        for w, a in zip(workers, answers, strict=True):
            if isinstance(a, dict):
                w.stats, w.inflight, w.releases = a["stats"], a["inflight"], a.get("releases", {})
                w.connections = (int(a["connections"][0]), int(a["connections"][1]))

    async def tables(self) -> list[dict[str, Any]]:
        """What each serving worker has installed, every Service field as plain data
        (route_message.plain): [{"pid", "seq", "routes"}], to compare with `_services`."""
        workers = [w for w in self._workers.values() if w.serving]
        answers = await asyncio.gather(*(w.request({"op": "routes"}, REQUEST_TIMEOUT) for w in workers))
        return [{"pid": w.pid, "seq": w.acked, "routes": a["routes"]} for w, a in zip(workers, answers, strict=True)]

    def inflight(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for w in self._workers.values():
            for target, n in w.inflight.items():
                total[target] = total.get(target, 0) + n
        return total

    def stats_all(self) -> dict[str, dict[str, Any]]:
        total: dict[str, dict[str, Any]] = orjson.loads(orjson.dumps(self._gone))
        for w in self._workers.values():
            for app, stats in w.stats.items():
                add_stats(total.setdefault(app, {}), stats)
        return total

    def release_stats_all(self) -> dict[str, dict[str, dict[str, Any]]]:
        """app -> release -> counters, summed over the workers (those that exited included)."""
        total: dict[str, dict[str, dict[str, Any]]] = orjson.loads(orjson.dumps(self._gone_releases))
        for w in self._workers.values():
            for app, releases in w.releases.items():
                for release, stats in releases.items():
                    add_stats(total.setdefault(app, {}).setdefault(release, {}), stats)
        return total

    def release_stats(self, app: str) -> dict[str, dict[str, Any]]:
        """release -> its counters for `app` (the canary's decisions read them): at most
        POLL_PERIOD old."""
        return self.release_stats_all().get(app, {})

    def stats(self, app: str) -> dict[str, Any]:
        return self.stats_all().get(app, {})

    def connection_counts(self) -> tuple[int, int]:
        live = [w.connections for w in self._workers.values() if w.serving]
        return sum(c[0] for c in live), sum(c[1] for c in live)

    @property
    def pids(self) -> list[int]:
        return sorted(self._workers)

    # -- TLS (supervisor/tls/acme.py) --------------------------------------------------------------
    def cert_store(self) -> CertFeed:
        if self._certs is None:
            self._certs = CertFeed(self._send_certs)
        return self._certs

    def _send_certs(self) -> None:
        if self._certs is not None:
            self._broadcast(self._certs.message())

    def enable_edge(self, tls_port: int = 443) -> EdgeFeed:
        if self._edge is None:
            self._edge = EdgeFeed(self._send_challenges, self.tls_port or tls_port)
        return self._edge

    def _send_challenges(self) -> None:
        if self._edge is not None:
            self._broadcast(self._edge.challenges.message())

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        """Bind (or take) the plain listener; workers start in `launch()`, after start_tls."""
        self._listen = sock if sock is not None else _bind(host, port)
        self.port = int(self._listen.getsockname()[1])

    async def start_tls(self, host: str, port: int, store: Any, *, sock: socket.socket | None = None) -> None:
        self._tls = sock if sock is not None else _bind(host, port)
        self.tls_port = int(self._tls.getsockname()[1])
        if isinstance(store, CertFeed):
            self._certs = store
        self.enable_edge(self.tls_port).tls_port = self.tls_port

    @property
    def listeners(self) -> list[socket.socket]:
        return [s for s in (self._listen, self._tls) if s is not None]

    async def launch(self) -> None:
        """Start the workers (those not adopted); return once every one accepts with the
        current table."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        missing = self.count - len(self._workers)  # one that failed to start is respawned by its watch
        await asyncio.gather(*(self._start_worker() for _ in range(max(0, missing))))
        self._keep(self._poll())
        log.info("Started workers count=%d pids=%s", len(self._workers), ",".join(map(str, self.pids)))

    def _keep(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def options_json(self) -> str:
        """The options every worker is started with (and an adopted one must have been)."""
        options = {k: getattr(self.options, k) for k in self.options.__dataclass_fields__ if k != "workers"}
        return orjson.dumps(options).decode()

    async def _start_worker(self) -> WorkerHandle:
        assert self._listen is not None
        fds = [self._listen.fileno()] + ([self._tls.fileno()] if self._tls is not None else [])
        cmd = [sys.executable, "-m", "proxy.worker", "--control-dir", str(self.dir),
               "--listen-fd", str(fds[0]), "--options", self.options_json()]
        if self._tls is not None:
            cmd += ["--tls-fd", str(fds[1])]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        proc = await asyncio.create_subprocess_exec(*cmd, pass_fds=fds, env=env, stdin=asyncio.subprocess.DEVNULL)
        return await self._take(WorkerHandle(proc, self.dir / f"{proc.pid}.sock"))

    async def adopt(self, pids: Sequence[int]) -> list[int]:
        """Make running workers ours (serve --takeover, a restarted supervisor): attach, send the
        certificates and the current table. Up to `count`; the pids adopted."""
        procs = []
        for pid in list(pids)[:self.count]:
            with contextlib.suppress(OSError):  # gone meanwhile
                procs.append(AdoptedProcess(pid))
        taken = await asyncio.gather(*(self._take(WorkerHandle(p, self.dir / f"{p.pid}.sock")) for p in procs))
        adopted = [w.pid for w in taken if w.serving]
        if adopted:
            log.info("Adopted workers count=%d pids=%s", len(adopted), ",".join(map(str, adopted)))
        return adopted

    async def _take(self, w: WorkerHandle) -> WorkerHandle:
        """Channel, attach, certificates, challenges, then the current table: it serves."""
        w.on_event = self._event
        self._workers[w.pid] = w
        self._keep(self._watch(w))
        try:
            await w.connect()
            await w.request({"op": "attach"}, REQUEST_TIMEOUT)
            if self._certs is not None:
                await w.request(self._certs.message(), REQUEST_TIMEOUT)
            if self._edge is not None:
                await w.request(self._edge.challenges.message(), REQUEST_TIMEOUT)
            while True:  # the table may change meanwhile: serve only the current one
                seq = self._seq
                await w.request(self._message(), ACK_TIMEOUT)
                if seq == self._seq:
                    break
            w.serving = w.ever_served = True
        except (WorkerGone, TimeoutError, OSError) as exc:
            log.error("worker failed to start pid=%d error=%s", w.pid, exc)
            w.kill()
        return w

    async def _watch(self, w: WorkerHandle) -> None:
        code = await w.proc.wait()
        w.closed()
        w.close()
        self._workers.pop(w.pid, None)
        for app, stats in w.stats.items():
            add_stats(self._gone.setdefault(app, {}), stats)
        for gone in self._gone.values():
            gone["inflight"] = 0
        for app, releases in w.releases.items():
            for release, stats in releases.items():
                add_stats(self._gone_releases.setdefault(app, {}).setdefault(release, {}), stats)
        if not self._respawn:
            return
        lived = time.monotonic() - w.started
        log.error("worker exited pid=%d code=%s after=%.1fs: starting another", w.pid, code, lived)
        # At once, unless it is a crash loop: a worker that never served, or a second quick death.
        quick = lived < RESPAWN_PAUSE
        if not w.ever_served or (quick and self._quick):
            await asyncio.sleep(RESPAWN_PAUSE)
        self._quick = quick
        if self._respawn:
            self.respawned += 1
            new = await self._start_worker()
            log.info("worker replaced old=%d new=%d seq=%d", w.pid, new.pid, self._seq)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_PERIOD)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - figures are best effort
                log.warning("collecting worker figures failed error=%r", exc)

    def detach(self) -> None:
        """`serve --takeover` handing the workers over: let go of them without a word. Each
        sees its channel close, serves on with the last table, and waits for the new daemon."""
        self._respawn = False
        for task in list(self._tasks):
            task.cancel()
        for w in self._workers.values():
            w.close()
        log.info("Handed over workers count=%d pids=%s", len(self._workers), ",".join(map(str, self.pids)))
        self._workers.clear()

    def stop_accepting(self) -> None:
        """A new daemon took the listeners: our workers close theirs and serve what they have."""
        self._respawn = False
        self._broadcast({"op": "stop_accepting"})

    async def stop(self, timeout: float) -> None:
        """Workers close their listeners, finish in-flight requests within `timeout`, and exit."""
        self._respawn = False
        workers = list(self._workers.values())
        log.info("Stopping workers count=%d timeout=%s", len(workers), timeout)
        for w in workers:
            w.send({"op": "stop", "timeout": timeout}).add_done_callback(_ignore)
        waits = [asyncio.ensure_future(w.proc.wait()) for w in workers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout + 3.0)
            for w in workers:
                if w.proc.returncode is None:
                    log.warning("worker did not stop pid=%d: killing it", w.pid)
                    w.kill()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        for sock in self.listeners:
            sock.close()
        log.info("Stopped workers count=%d", len(workers))


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a gone worker is handled by its watcher
