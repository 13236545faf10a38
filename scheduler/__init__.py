"""Cron tasks (Dokku app.json semantics) run by APScheduler 3.x in one-off containers."""

from __future__ import annotations

from .errors import NotRunning, ScheduleError, SchedulerError, UnknownTask
from .plan import ReloadPlan, plan_configs
from .runs import RunRecord, RunStore
from .service import LABEL_CRON, MISFIRE_GRACE, STOP_GRACE, Scheduler
from .triggers import build_trigger

__all__ = [
    "LABEL_CRON",
    "MISFIRE_GRACE",
    "STOP_GRACE",
    "NotRunning",
    "ReloadPlan",
    "RunRecord",
    "RunStore",
    "ScheduleError",
    "Scheduler",
    "SchedulerError",
    "UnknownTask",
    "build_trigger",
    "plan_configs",
]
