"""Errors of the scheduler package. Callers check the class; the message carries the detail."""

from __future__ import annotations

from supervisor.model.errors import DockyardError


class SchedulerError(DockyardError):
    """Base of every error the scheduler raises."""


class ScheduleError(SchedulerError, ValueError):
    """A cron schedule string that cannot be turned into a trigger."""

    def __init__(self, schedule: str, reason: str, task: str | None = None) -> None:
        self.schedule = schedule
        self.reason = reason
        self.task = task
        where = f"cron task {task!r}: " if task else ""
        super().__init__(f"{where}bad schedule {schedule!r}: {reason}")


class UnknownTask(SchedulerError, LookupError):
    """No such app, or no such cron task in that app."""
