"""One cron run: a one-off container of the app's current release, its output kept (the
last `cron_output_kb`), its record finished with a status: ok, failed, timeout, replaced, or
skipped when the app has no release to run in. Every way out finishes the record (a crash
too), so no run is ever left 'running'; the container is removed unless the daemon stops
during the run (the next start removes it, labelled dockyard.cron).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from scheduler.oneoff import Handle, OnOutput, OutputTail, run_streaming
from scheduler.runs import RunRecord, RunStatus, RunStore
from supervisor.model.errors import DockyardError
from supervisor.model.spec import AppSpec, CronSpec
from supervisor.ops import metrics
from supervisor.runtime.containers import oneoff_spec
from supervisor.runtime.protocol import OneOffResult, Runtime

log = logging.getLogger("dockyard.scheduler")
ImageOf = Callable[[str], "tuple[str, int] | None"]  # app -> (image, release) serving now
LABEL_CRON = "dockyard.cron"  # the task id, on every cron container
ROLE = "cron"
INTERRUPTED_NOTE = "\n[dockyard stopped during this run; its container was left running]"


@dataclass(frozen=True, slots=True)
class RunSetting:
    """What every run of one scheduler shares."""

    runtime: Runtime
    store: RunStore
    image_of: ImageOf
    instance: str
    extra_labels: Mapping[str, str]
    output_limit: int  # bytes of output kept


async def execute(
    setting: RunSetting,
    app: AppSpec,
    task: CronSpec,
    run_id: int,
    on_output: OnOutput | None,
    active: dict[tuple[str, str], dict[int, Handle]],
    abandoned: Callable[[], bool],
) -> RunRecord:
    """Run `task` of `app` as run `run_id` (claimed already) and finish its record.

    The run's Handle is in `active` while it goes (the scheduler's concurrency policies look
    there); `abandoned()` says the daemon is stopping and leaves the container running.
    """
    current = setting.image_of(app.name)
    if current is None:
        message = f"[skipped: app {app.name!r} has no release to run in]"
        log.warning("cron skipped app=%s task=%s run=%d reason=not-deployed", app.name, task.id, run_id)
        if on_output:
            on_output(message)
        return setting.store.finish(run_id, "skipped", None, message)
    image, release = current
    base = oneoff_spec(
        app, image=image, instance=setting.instance, release=release,
        role=ROLE, command=task.command, suffix=f"{task.id}.{run_id}-{secrets.token_hex(2)}",
    )
    labels = {**base.labels, LABEL_CRON: task.id, **setting.extra_labels}
    env = {**base.env, "DOCKYARD_CRON_TASK": task.id}
    spec = replace(base, labels=MappingProxyType(labels), env=MappingProxyType(env))
    setting.store.started(run_id, image=image, release=release, container=spec.name)
    handle = Handle()
    key = (app.name, task.id)
    active.setdefault(key, {})[run_id] = handle
    tail = OutputTail(setting.output_limit)
    log.info("cron running app=%s task=%s run=%d release=%d container=%s",
             app.name, task.id, run_id, release, spec.name)
    started = time.monotonic()
    result: OneOffResult | None = None
    error = ""
    try:
        result = await run_streaming(
            setting.runtime, spec, timeout=task.timeout, tail=tail, on_output=on_output,
            handle=handle, stop_timeout=app.stop_timeout,
        )
    except asyncio.CancelledError:
        note = INTERRUPTED_NOTE if abandoned() else "\n[cancelled; its container was removed]"
        setting.store.finish(run_id, "failed", None, tail.text() + note)
        raise
    except Exception as exc:  # recorded, never left 'running'
        if not isinstance(exc, DockyardError):
            log.exception("cron run crashed app=%s task=%s run=%d", app.name, task.id, run_id)
        error = f"[dockyard: {exc.__class__.__name__ if not str(exc) else exc}]"
        if on_output:
            on_output(error)
    finally:
        active.get(key, {}).pop(run_id, None)
        if not active.get(key):
            active.pop(key, None)
        if handle.container_id and not abandoned():
            with contextlib.suppress(DockyardError):
                await setting.runtime.remove(handle.container_id)
    status: RunStatus
    if result is None:
        status, exit_code, output = "failed", None, (tail.text() + "\n" + error).strip()
    else:
        exit_code = result.exit_code
        output = tail.text()
        if handle.stop_requested:
            status = "replaced"
        elif result.timed_out:
            status = "timeout"
            output = output.rstrip("\n") + f"\n[timed out after {task.timeout:g}s]"
        else:
            status = "ok" if exit_code == 0 else "failed"
    record = setting.store.finish(run_id, status, exit_code, output)
    metrics.cron_run(app.name, task.id, status, time.monotonic() - started)
    log.info("cron finished app=%s task=%s run=%d status=%s exit_code=%s seconds=%.2f",
             app.name, task.id, run_id, status, exit_code, time.monotonic() - started)
    return record
