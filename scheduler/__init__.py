"""Cron tasks (Dokku app.json semantics) run by APScheduler 3.x in one-off containers.

The names below load on first use (PEP 562): the `dockyard` CLI imports scheduler.cli, and the
service's imports (APScheduler, aiohttp, the Docker SDK) would cost every CLI call ~0.4 s of CPU.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.errors import ScheduleError, SchedulerError, UnknownTask
    from scheduler.execute import LABEL_CRON
    from scheduler.plan import ReloadPlan, plan_configs
    from scheduler.runs import RunRecord, RunStore
    from scheduler.service import MISFIRE_GRACE, STOP_GRACE, Scheduler
    from scheduler.triggers import build_trigger

_WHERE = {
    "ScheduleError": ".errors",
    "SchedulerError": ".errors",
    "UnknownTask": ".errors",
    "ReloadPlan": ".plan",
    "plan_configs": ".plan",
    "RunRecord": ".runs",
    "RunStore": ".runs",
    "LABEL_CRON": ".execute",
    "MISFIRE_GRACE": ".service",
    "STOP_GRACE": ".service",
    "Scheduler": ".service",
    "build_trigger": ".triggers",
}
__all__ = [
    "LABEL_CRON",
    "MISFIRE_GRACE",
    "ReloadPlan",
    "RunRecord",
    "RunStore",
    "STOP_GRACE",
    "ScheduleError",
    "Scheduler",
    "SchedulerError",
    "UnknownTask",
    "build_trigger",
    "plan_configs",
]  # = the keys of _WHERE


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
