"""The Scheduler: cron tasks of every app, fired by APScheduler 3.x, run in one-off containers.

APScheduler only decides *when*. Our own executor hands each due (coalesced) fire time to
`run_scheduled`, which claims (app, task, time) in SQLite before running -- so a restart,
a clock step back or a second daemon on the same state never runs one scheduled time twice.
Each run (scheduler/execute.py) gets a one-off container from the app's *current* release (`image_of` is asked at
run time, so a deploy or rollback switches the image with nothing else to do).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler.errors import UnknownTask
from scheduler.execute import LABEL_CRON, ImageOf, RunSetting, execute
from scheduler.jobs import CronExecutor, job_id, key_of, placeholder
from scheduler.oneoff import Handle, OnOutput
from scheduler.plan import ReloadPlan, plan_configs, tasks_of
from scheduler.runs import RunRecord, RunStore
from scheduler.triggers import build_trigger
from supervisor.model import defaults
from supervisor.model.errors import DockyardError
from supervisor.model.spec import AppSpec, Config, CronSpec
from supervisor.runtime.protocol import Runtime

log = logging.getLogger("dockyard.scheduler")


MISFIRE_GRACE = 60  # seconds late a fire time may still run (APScheduler misfire_grace_time)
STOP_GRACE = 5.0  # seconds stop() waits for runs in progress before leaving them be


def _iso(stamp: float | None) -> str | None:
    return datetime.fromtimestamp(stamp, UTC).isoformat() if stamp is not None else None


class Scheduler:
    def __init__(
        self,
        config: Config,
        runtime: Runtime,
        image_of: ImageOf,
        *,
        extra_labels: Mapping[str, str] = MappingProxyType({}),
        store: RunStore | None = None,
        misfire_grace_time: int = MISFIRE_GRACE,
        stop_grace: float = STOP_GRACE,
        output_kb: int = defaults.CRON_OUTPUT_KB,
    ) -> None:
        self._config = config
        self._runtime = runtime
        self._store = store or RunStore.in_state_dir(config.server.state_dir)
        self._store.keep = config.server.keep_cron_runs
        self._misfire = misfire_grace_time
        self._stop_grace = stop_grace
        self._setting = RunSetting(runtime, self._store, image_of, config.server.instance,
                                   MappingProxyType(dict(extra_labels)), output_kb * 1024)
        self._aps: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._active: dict[tuple[str, str], dict[int, Handle]] = {}
        self._abandon = False

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._aps is not None

    async def start(self) -> None:
        """Clean up after the previous daemon, then schedule every task on the running loop."""
        if self._aps is not None:
            return
        self._abandon = False
        stale = self._store.interrupted("\n[dockyard stopped during this run]")
        if stale:
            log.warning("interrupted cron runs marked failed count=%d", stale)
        await self._remove_leftovers()
        self._aps = AsyncIOScheduler(
            timezone=self._config.server.timezone,
            executors={"default": CronExecutor(self._fire)},
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": self._misfire,
                "max_instances": 1_000_000,  # concurrency policies are ours
            },
        )
        self._aps.start()
        for key, task in tasks_of(self._config).items():
            self._add_job(key, task)
        log.info("scheduler started tasks=%d timezone=%s", len(self._aps.get_jobs()),
                 self._config.server.timezone)

    async def stop(self) -> None:
        """Stop firing; wait up to stop_grace for runs in progress, then leave them running.

        A run left going keeps its container (labelled dockyard.cron); its record is marked
        failed, and the next start() removes the container.
        """
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            log.info("scheduler stopping runs=%d grace=%gs", len(pending), self._stop_grace)
            _done, left = await asyncio.wait(pending, timeout=self._stop_grace)
            if left:
                self._abandon = True
                for task in left:
                    task.cancel()
                await asyncio.wait(left, timeout=self._stop_grace)
                log.warning("scheduler stopped leaving cron runs=%d running", len(left))
        log.info("scheduler stopped")

    def close(self) -> None:
        self._store.close()

    async def _remove_leftovers(self) -> None:
        labels = {defaults.LABEL_INSTANCE: self._config.server.instance, LABEL_CRON: ""}
        try:
            leftovers = await self._runtime.list(labels)
        except DockyardError as exc:
            log.warning("cannot list leftover cron containers error=%s", exc)
            return
        for info in leftovers:
            log.info("removing leftover cron container=%s", info.name)
            with contextlib.suppress(DockyardError):
                await self._runtime.remove(info.id)

    # ---- jobs --------------------------------------------------------------------------

    def _add_job(self, key: tuple[str, str], task: CronSpec) -> None:
        assert self._aps is not None
        trigger = build_trigger(task.schedule, self._config.server.timezone, task=f"{key[0]}.{task.id}")
        job = self._aps.add_job(placeholder, trigger, id=job_id(*key), name=job_id(*key))
        if key in self._store.suspended():
            job.pause()

    def reload(self, config: Config) -> ReloadPlan:
        """Adopt a new config: add, remove and reschedule tasks. Runs in progress go on.

        Every trigger is built before anything changes, so a bad schedule leaves the old
        config in place (ScheduleError).
        """
        the_plan = plan_configs(self._config, config)
        new_tasks = tasks_of(config)
        for key in the_plan.added + the_plan.changed:
            build_trigger(new_tasks[key].schedule, config.server.timezone, task=f"{key[0]}.{key[1]}")
        self._config = config
        self._store.keep = config.server.keep_cron_runs
        if self._aps is not None:
            # Each trigger carries its own time zone: a changed zone reschedules every task.
            for key in the_plan.removed + the_plan.changed:
                with contextlib.suppress(Exception):
                    self._aps.remove_job(job_id(*key))
            for key in the_plan.added + the_plan.changed:
                self._add_job(key, new_tasks[key])
        log.info("scheduler reloaded added=%d removed=%d changed=%d",
                 len(the_plan.added), len(the_plan.removed), len(the_plan.changed))
        return the_plan

    def task(self, app: str, task_id: str) -> CronSpec:
        """The spec of one task; UnknownTask when the app or the task does not exist."""
        return self._lookup(app, task_id)[1]

    def _lookup(self, app: str, task_id: str) -> tuple[AppSpec, CronSpec]:
        spec = self._config.apps.get(app)
        if spec is None:
            raise UnknownTask(f"unknown app {app!r}")
        for task in spec.cron:
            if task.id == task_id:
                return spec, task
        known = ", ".join(t.id for t in spec.cron) or "none"
        raise UnknownTask(f"app {app!r} has no cron task {task_id!r} (tasks: {known})")

    # ---- suspend / resume / list -------------------------------------------------------

    def suspend(self, app: str, task_id: str) -> None:
        self._lookup(app, task_id)
        self._store.suspend(app, task_id)
        if self._aps is not None and (job := self._aps.get_job(job_id(app, task_id))):
            job.pause()
        log.info("cron suspended app=%s task=%s", app, task_id)

    def resume(self, app: str, task_id: str) -> None:
        self._lookup(app, task_id)
        self._store.resume(app, task_id)
        if self._aps is not None and (job := self._aps.get_job(job_id(app, task_id))):
            job.resume()
        log.info("cron resumed app=%s task=%s", app, task_id)

    def list(self, app: str | None = None) -> list[dict[str, Any]]:
        """One dict per task: schedule, next run, last result, suspended, runs going."""
        if app is not None and app not in self._config.apps:
            raise UnknownTask(f"unknown app {app!r}")
        suspended = self._store.suspended()
        rows = []
        for (app_name, task_id), task in sorted(tasks_of(self._config).items()):
            if app is not None and app_name != app:
                continue
            job = self._aps.get_job(job_id(app_name, task_id)) if self._aps else None
            next_run = job.next_run_time if job is not None else None
            last = self._store.last(app_name, task_id)
            rows.append({
                "app": app_name,
                "id": task_id,
                "command": task.command,
                "schedule": task.schedule,
                "concurrency_policy": task.concurrency_policy,
                "timeout": task.timeout,
                "source": task.source,
                "suspended": (app_name, task_id) in suspended,
                "next_run": next_run.isoformat() if next_run else None,
                "running": len(self._active.get((app_name, task_id), {})),
                "max_concurrent": task.max_concurrent,
                "last": None if last is None else {
                    "status": last.status,
                    "exit_code": last.exit_code,
                    "started": _iso(last.started),
                    "ended": _iso(last.ended),
                    "scheduled": _iso(last.scheduled),
                    "manual": last.manual,
                },
            })
        return rows

    def runs(
        self, app: str, task_id: str | None = None, limit: int = 20
    ) -> builtins.list[RunRecord]:
        """Newest first."""
        return self._store.runs(app, task_id, limit)

    # ---- runs --------------------------------------------------------------------------

    def _fire(self, job: str, scheduled: datetime) -> None:
        """Called by APScheduler (through jobs.CronExecutor) on the loop when a time is due."""
        app, task_id = key_of(job)
        self._spawn(self.run_scheduled(app, task_id, scheduled))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_scheduled(
        self, app: str, task_id: str, scheduled: datetime
    ) -> RunRecord | None:
        """Run the task for one scheduled time, at most once ever: what a trigger fire does.

        Applies the concurrency policy. None when that time was claimed already (by this or
        an earlier daemon) or the task no longer exists.
        """
        try:
            app_spec, task = self._lookup(app, task_id)
        except UnknownTask:
            return None  # removed by a reload after it was due
        stamp = scheduled.timestamp()
        active = self._active.get((app, task_id), {})
        full = task.concurrency_policy == "allow" and len(active) >= task.max_concurrent
        if (active and task.concurrency_policy == "forbid") or full:
            run_id = self._store.claim(app, task_id, stamp, status="skipped")
            if run_id is None:
                return None
            going = ", ".join(str(r) for r in sorted(active))
            log.info("cron skipped app=%s task=%s scheduled=%s running=%s", app, task_id,
                     scheduled.isoformat(), going)
            why = (f"[skipped: {len(active)} runs ({going}) are going, the most max_concurrent allows]"
                   if full else f"[skipped: run {going} is still going]")
            return self._store.finish(run_id, "skipped", None, why)
        run_id = self._store.claim(app, task_id, stamp)
        if run_id is None:
            log.info("cron already ran app=%s task=%s scheduled=%s", app, task_id, scheduled.isoformat())
            return None
        if active and task.concurrency_policy == "replace":
            await self._replace(app, task_id, app_spec.stop_timeout)
        return await self._execute(app_spec, task, run_id, None)

    async def _replace(self, app: str, task_id: str, stop_timeout: float) -> None:
        handles = dict(self._active.get((app, task_id), {}))
        for run_id, handle in handles.items():
            log.info("cron replacing app=%s task=%s run=%d", app, task_id, run_id)
            handle.stop_requested = True
            if handle.container_id:
                await self._runtime.stop(handle.container_id, stop_timeout)
        # Wait for them to record themselves as replaced (they are removed from _active).
        while any(r in self._active.get((app, task_id), {}) for r in handles):
            await asyncio.sleep(0.05)

    async def run_now(
        self, app: str, task_id: str, on_output: OnOutput | None = None
    ) -> RunRecord:
        """Run a task now (`dockyard cron run`), whatever its policy and suspension say."""
        app_spec, task = self._lookup(app, task_id)
        run_id = self._store.claim(app, task_id, None)
        assert run_id is not None
        # Its own task: a caller that goes away does not cut the run short.
        running = self._spawn(self._execute(app_spec, task, run_id, on_output))
        record: RunRecord = await asyncio.shield(running)
        return record
    async def _execute(
        self, app: AppSpec, task: CronSpec, run_id: int, on_output: OnOutput | None
    ) -> RunRecord:
        return await execute(self._setting, app, task, run_id, on_output, self._active,
                             lambda: self._abandon)
