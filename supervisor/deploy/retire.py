"""Retiring old containers after a swap: drain, `docker stop` after retire_after, remove.

Web containers first leave the route table (the swap did that), then their in-flight requests
are drained (up to drain_timeout); they keep running, without traffic, until `retire_after`
seconds after the swap (Dokku's wait-to-retire: "the old container is kept running"), when they
are stopped (`docker stop`: SIGTERM, SIGKILL after stop_timeout) and removed. Signalling them at
the drain instead put the old container's shutdown (the engine's `runc update`, `runc kill`
and the exit's cleanup, ~50 ms of CPU) on top of the new container's start, in the first
100 ms after the switch, where it was measured delaying requests (issue #19, bench/RESULTS.md).
Other process types get SIGTERM at the switch and are stopped after stop_timeout, so two
generations of workers never overlap longer than that. Every timer is written to SQLite
first, so a restarted daemon resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from supervisor.ops.events import EventBus
from supervisor.ops.tasks import TaskSet
from supervisor.runtime.protocol import ContainerInfo, Runtime
from supervisor.store.releases import StateStore

log = logging.getLogger("dockyard.supervisor")


class Drainer(Protocol):
    async def drain(self, targets: Iterable[str], timeout: float) -> int: ...


class Retirer:
    def __init__(self, runtime: Runtime, drainer: Drainer, state: StateStore,
                 events: EventBus | None = None) -> None:
        self._runtime = runtime
        self._events = events
        self._drainer = drainer
        self._state = state
        self._tasks = TaskSet(on_error=lambda exc: log.error("retire failed: %r", exc))
        self._active: set[str] = set()  # container ids a retire task of this daemon holds

    def retire_web(
        self,
        app: str,
        containers: Iterable[ContainerInfo],
        targets: Iterable[str],
        *,
        drain_timeout: float,
        retire_after: float,
        stop_timeout: float,
        stop_at: float | None = None,
    ) -> None:
        """`stop_at`: the timer the caller wrote already (a deploy commits it with the release);
        None: written here, `retire_after` from now."""
        items = list(containers)
        if not items:
            return
        if stop_at is None:
            stop_at = time.time() + retire_after
            self._state.add_retiring(app, [c.id for c in items], stop_at)
        targets = list(targets)
        self._spawn([c.id for c in items],
                    lambda: self._web(app, items, targets, drain_timeout, stop_at, stop_timeout))

    def retire_now(self, app: str, containers: Iterable[ContainerInfo], stop_timeout: float,
                   stop_at: float | None = None) -> None:
        """SIGTERM now (workers at the switch); stop and remove after stop_timeout. `stop_at`:
        as for retire_web."""
        items = list(containers)
        if not items:
            return
        if stop_at is None:
            stop_at = time.time() + stop_timeout
            self._state.add_retiring(app, [c.id for c in items], stop_at)
        self._spawn([c.id for c in items],
                    lambda: self._signal_then_stop(app, items, stop_at, stop_timeout))

    def resume(self, app: str, container_id: str, stop_at: float, stop_timeout: float) -> None:
        """After a daemon restart: finish a retire timer that was running."""
        self._spawn([container_id], lambda: self._stop_at(app, [container_id], stop_at, stop_timeout))

    def resume_failed(self, stop_timeout: float) -> int:
        """After a Docker outage: retire timers in SQLite that no task holds any more (their
        task failed while the engine was away) run again; how many."""
        again = [(cid, app, at) for cid, app, at in self._state.retiring() if cid not in self._active]
        for cid, app, stop_at in again:
            self.resume(app, cid, stop_at, stop_timeout)
        return len(again)

    async def _web(
        self,
        app: str,
        items: list[ContainerInfo],
        targets: list[str],
        drain_timeout: float,
        stop_at: float,
        stop_timeout: float,
    ) -> None:
        cancelled = await self._drainer.drain(targets, drain_timeout)
        log.info("drained app=%s targets=%s cancelled=%d", app, ",".join(targets), cancelled)
        await self._stop_at(app, [c.id for c in items], stop_at, stop_timeout)

    async def _signal_then_stop(
        self, app: str, items: list[ContainerInfo], stop_at: float, stop_timeout: float
    ) -> None:
        for c in items:
            await self._runtime.no_restart(c.id)
            await self._runtime.kill(c.id, "SIGTERM")
        await self._stop_at(app, [c.id for c in items], stop_at, stop_timeout)

    async def _stop_at(
        self, app: str, ids: list[str], stop_at: float, stop_timeout: float
    ) -> None:
        delay = stop_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for cid in ids:
            await self._runtime.no_restart(cid)
            await self._runtime.stop(cid, stop_timeout)
            await self._runtime.remove(cid)
            self._state.done_retiring(cid)
            log.info("retired app=%s container=%s", app, cid[:12])
        if self._events is not None:
            self._events.publish({"event": "retired", "app": app, "containers": len(ids)})

    def _spawn(self, ids: list[str], work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work()` in a task that holds `ids` (see resume_failed) until it ends."""
        self._active.update(ids)
        task = asyncio.ensure_future(work())
        task.add_done_callback(lambda _: self._active.difference_update(ids))
        self._tasks.track(task)

    async def close(self) -> None:
        """Daemon shutdown: stop the timers (they resume from SQLite on the next start)."""
        await self._tasks.close()

    async def wait_idle(self) -> None:
        """Tests: wait until every retire in progress has finished."""
        await self._tasks.wait_idle()
