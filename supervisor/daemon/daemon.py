"""`dockyard serve`: the supervisor and control API on one uvloop event loop; the proxy in
`[proxy] workers` worker processes (supervisor/daemon/dataplane/), or in-process with `workers = 0`.

Lifecycle (as uvicorn's): startup -> main loop -> shutdown. Signal handlers only set a
flag; a second signal forces the exit. Stopping the daemon never stops app containers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import sqlite3
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy import compiled
from proxy.options import ProxyOptions
from scheduler import Scheduler
from supervisor.api import dashboard
from supervisor.api import git as gitcontrol
from supervisor.api import metrics as metrics_api
from supervisor.api.control import (
    CONNECTIONS_KEY,
    TLS_STATUS_KEY,
    make_app,
    prepare_socket_path,
)
from supervisor.api.cron import add_routes as add_cron_routes
from supervisor.base import priority
from supervisor.base.address import split_listen
from supervisor.config.loader import load_config
from supervisor.daemon.dataplane import (
    WorkerPool,
    adopt_workers,
    find_orphans,
    retire_orphans,
    take_listeners,
)
from supervisor.daemon.takeover import TakeoverServer, request_handoff, systemd_sockets
from supervisor.deploy.engine import EngineMonitor
from supervisor.deploy.supervisor import Supervisor
from supervisor.deploy.watch import Watcher
from supervisor.git import buildcontext
from supervisor.git import repo as gitrepo
from supervisor.model.errors import ConfigError, DockyardError, RuntimeFailure
from supervisor.model.spec import Config
from supervisor.ops import logs
from supervisor.runtime.docker import DockerRuntime
from supervisor.runtime.select import build_runtime
from supervisor.store import secrecy
from supervisor.store.releases import StateStore
from supervisor.tls.service import start_tls

if TYPE_CHECKING:
    from proxy.proxy import Proxy

log = logging.getLogger("dockyard.supervisor")
SHUTDOWN_GRACE = 10.0  # seconds in-flight proxy requests get when the daemon stops


def make_proxy(options: ProxyOptions, state_dir: Any) -> Proxy | WorkerPool:
    """The data plane: worker processes, or the proxy on the supervisor's loop (workers = 0)."""
    count = options.worker_count()
    if count:
        return WorkerPool(options, count, state_dir / "workers")
    # imported only here: with workers, the supervisor never loads the data plane
    from proxy.proxy import Proxy

    return Proxy(options)


class Daemon:
    def __init__(self, config: Config, takeover: bool = False) -> None:
        self.config = config
        self.takeover = takeover
        self.handed_over = False
        self.acme: Any = None
        self.should_exit = asyncio.Event()
        self.should_reload = asyncio.Event()
        self._signals = 0
        self._reload_lock = asyncio.Lock()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal=%d: exiting now", signum)
            os._exit(1)
        self.should_exit.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(64, "dockyard"))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self.should_reload.set)

        server = self.config.server
        # umask 077, state dir 0700, its files 0600 (existing ones too); old releases lose
        # their env values (docs/operations.md, "Secrets").
        await asyncio.to_thread(secrecy.secure_state_dir, server.state_dir)
        state = StateStore(server.state_dir)
        try:
            await asyncio.to_thread(state.scrub_secrets)
        except sqlite3.Error as exc:
            log.warning("old releases not scrubbed of env values error=%s", exc)
        runtime = await build_runtime(self.config, DockerRuntime())  # + Swarm if an app uses it
        proxy = make_proxy(self.config.proxy, server.state_dir)
        # In a thread: it parses the repository files (app.json, Procfile) of the serving releases.
        sup = await asyncio.to_thread(Supervisor, self.config, runtime, proxy, state)
        self.sup = sup

        def image_of(app: str) -> tuple[str, int] | None:
            rel = state.current(app)
            return (rel.image, rel.number) if rel else None

        # The scheduler sees the apps as deployed: a pushed app.json's cron included.
        sched = self.sched = Scheduler(sup.config, runtime, image_of)
        sup.on_config.append(self._reschedule)
        watcher = Watcher(sup.ctx)

        takeover_path = server.state_dir / "takeover.sock"
        handoff = await request_handoff(takeover_path) if self.takeover else None
        if self.takeover and handoff is None:
            log.info("takeover: no running daemon answers on %s; starting normally", takeover_path)
        inherited = handoff.sockets if handoff else systemd_sockets()
        # Workers of a supervisor killed with -9 still serve: take their sockets, adopt or replace them.
        orphans = [] if handoff else await find_orphans(server.state_dir / "workers")
        if orphans and not inherited:
            inherited = await take_listeners(orphans)
        if handoff is None:
            prepare_socket_path(server.control_socket)
        host, port = split_listen(server.listen)
        try:
            await asyncio.to_thread(gitrepo.ensure_repos, self.config)
            stale = await asyncio.to_thread(buildcontext.sweep, server.state_dir)
            if stale:  # a daemon killed mid-build left its context behind
                log.info("removed stale build directories count=%d", len(stale))
            adopted = await self._adopt(sup)  # the route table is complete before the first accept
            if not adopted and handoff is not None:  # it would take the listeners with no routes
                raise DockyardError("takeover refused: Docker does not answer; the old daemon keeps serving")
            await proxy.start(host, port, sock=inherited[0] if inherited else None)
            # TLS listener (the second inherited socket, if any), manual certs, ACME: docs/tls.md
            self.acme = await start_tls(
                self.config, proxy, sock=inherited[1] if len(inherited) > 1 else None
            )
            if isinstance(proxy, WorkerPool):
                if handoff is not None and handoff.workers:  # the data plane is not restarted:
                    await handoff.release(handover=True)  # the old workers serve on, unattached
                    log.info("takeover: the old daemon released its listeners and workers pid=%d",
                             os.getpid())
                    orphans = await find_orphans(server.state_dir / "workers", handed_over=True)
                orphans = await adopt_workers(proxy, orphans)  # the rest are replaced
                await proxy.launch()  # every worker (adopted or new) accepts with the current table
            await retire_orphans(orphans, SHUTDOWN_GRACE)
            watcher.start()
            engine = EngineMonitor(sup.ctx, adopted=adopted)  # Docker away and back: deploy/engine.py
            engine.start()
        except BaseException:
            if handoff is not None and not handoff.released:
                handoff.abandon()  # the old daemon keeps serving
            raise
        if handoff is not None and not handoff.released:
            await handoff.release()  # the old daemon stops accepting only now
            log.info("takeover: the old daemon released its listeners pid=%d", os.getpid())

        control = make_app(sup, self.reload)
        def tls_status() -> dict[str, dict[str, Any]]:
            return self.acme.status() if self.acme is not None else {}

        control[TLS_STATUS_KEY] = tls_status
        control[CONNECTIONS_KEY] = proxy.connection_counts
        add_cron_routes(control, lambda: sched)
        gitcontrol.add_routes(control, lambda: sup)
        metrics_api.add_routes(control, lambda: sup, lambda: proxy)
        metrics_runner = (
            await metrics_api.start_http(server.metrics_listen, lambda: sup, lambda: proxy)
            if server.metrics_listen else None
        )
        site_spec = server.dashboard_site  # dashboard_host: one more route in the proxy's table
        board = (await dashboard.serve(server.dashboard_listen, sup, proxy, lambda: sched, tls_status,
                                       site_spec, proxy)
                 if server.dashboard_listen or site_spec else None)  # docs/dashboard.md
        runner = web.AppRunner(control, access_log=None)
        await runner.setup()
        old_umask = os.umask(0o177)
        try:
            site = web.UnixSite(runner, str(server.control_socket))
            await site.start()
        finally:
            os.umask(old_umask)
        os.chmod(server.control_socket, 0o600)

        async def release(handover: bool) -> None:
            """A new daemon took the listeners: stop accepting (or let go of the proxy workers,
            which it adopts) and hand everything over."""
            nonlocal metrics_runner, board
            self.handed_over = True
            if handover and isinstance(proxy, WorkerPool):
                proxy.detach()
            else:
                proxy.stop_accepting()
            await site.stop()
            if metrics_runner is not None:  # the new daemon binds metrics_listen next
                await metrics_runner.cleanup()
                metrics_runner = None
            if board is not None:  # the new daemon binds dashboard_listen next (and routes dashboard_host)
                await board.close()
                board = None
            await takeovers.close(unlink=False)
            await sched.stop()
            await watcher.close()
            await engine.close()
            await sup.retirer.close()
            self.should_exit.set()

        def busy() -> str | None:
            running = sup.busy()  # deploys, builds, rollbacks, restarts, scales, stops
            return ", ".join(f"a {what} of {app}" for app, what in sorted(running.items())) + \
                " is running" if running else None

        takeovers = TakeoverServer(takeover_path, lambda: proxy.listeners, busy, release,
                                   lambda: len(proxy.pids) if isinstance(proxy, WorkerPool) else 0)
        await takeovers.start()
        log.info(
            "serving listen=%s control=%s pid=%d proxy=%s workers=%s", server.listen, server.control_socket,
            os.getpid(), compiled.describe(), ",".join(map(str, proxy.pids)) if isinstance(proxy, WorkerPool) else 0,
        )
        priority.restore()  # started at a lower priority (cli/entry.py): now it serves
        await sched.start()
        starting = asyncio.ensure_future(sup.start_apps() if adopted else asyncio.sleep(0))
        reloads = asyncio.ensure_future(self._reload_on_signal())
        try:
            await self.should_exit.wait()
        finally:
            log.info("stopping pid=%d (app containers keep running)", os.getpid())
            for task in (starting, reloads):
                task.cancel()
                with suppress(BaseException):
                    await task
            await watcher.close()
            await engine.close()
            await sched.stop()
            sched.close()
            await runner.cleanup()
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            if board is not None:
                await board.close()
            if self.acme is not None:
                await self.acme.close()
            await proxy.stop(SHUTDOWN_GRACE)
            await sup.retirer.close()
            state.close()
            if not self.handed_over:
                await takeovers.close()
                with suppress(FileNotFoundError):
                    server.control_socket.unlink()
            log.info("stopped pid=%d handed_over=%s", os.getpid(), self.handed_over)

    @staticmethod
    async def _adopt(sup: Supervisor) -> bool:
        """Adopt what runs; False when Docker does not answer (then the daemon serves anyway,
        says so in `status`, and the engine monitor adopts when Docker answers)."""
        try:
            await sup.adopt()
        except RuntimeFailure as exc:
            sup.ctx.engine.down(str(exc))
            log.error("docker unreachable at start error=%s: serving, adopting when it answers", exc)
            return False
        return True

    async def _reload_on_signal(self) -> None:
        while True:
            await self.should_reload.wait()
            self.should_reload.clear()
            try:
                await self.reload()
            except ConfigError as exc:
                log.error("reload refused: the config has errors; nothing changed: %s", exc)
            except DockyardError as exc:
                log.error("reload failed error=%s", exc)
            except Exception as exc:  # the signal loop must survive anything: later SIGHUPs work
                log.error("reload failed unexpectedly error=%r", exc, exc_info=exc)

    def _reschedule(self, config: Config) -> None:
        """The apps' definitions changed (a build brought an app.json, a reload): the cron too."""
        try:
            self.sched.reload(config)
        except DockyardError as exc:
            log.error("cron not rescheduled error=%s", exc)

    async def reload(self) -> dict[str, object]:
        """Re-read and validate the config; a bad file changes nothing (ConfigError)."""
        async with self._reload_lock:
            # Reading and merging (app.json, Procfile) run in a thread, never on the event loop;
            # the merge is memoized (config/repo.py), so Supervisor.reload's own merge reuses it.
            new = await asyncio.to_thread(load_config, self.config.path)
            effective = await asyncio.to_thread(self.sup.ctx.apps.effective, new)
            self.sched.reload(effective)  # a bad schedule raises first
            result = await self.sup.reload(new)
            if self.acme is not None:
                self.acme.apply(new)  # certificates follow the apps (docs/tls.md)
            self.config = new
            return result


def serve(config: Config, log_format: str = "kv", takeover: bool = False) -> int:
    logs.setup(log_format)
    for warning in config.warnings:
        log.warning("config warning=%r", warning)
    try:
        import uvloop

        uvloop.run(Daemon(config, takeover).run())
    except DockyardError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    return 0
