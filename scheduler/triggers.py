"""Schedule strings -> APScheduler 3.x triggers, with cron's (and Dokku's robfig/cron) meaning.

The grammar is supervisor.config.cron, the one the config loader checks schedules with (day
of week 0-7, 7 = Sunday). The trigger builder also takes a leading seconds field (6 fields),
which the config loader does not; it exists for tests and sub-minute experiments.

Two differences between cron and APScheduler 3.x CronTrigger are handled here:
- day of week: cron's 0 (and 7) is Sunday, APScheduler 3.x's 0 is Monday. We pass names.
- when both day-of-month and day-of-week are restricted, cron runs when EITHER matches;
  CronTrigger needs both. We build an OrTrigger of the two.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from scheduler.errors import ScheduleError
from supervisor.config import cron

# the grammar's field names -> CronTrigger's
_APSCHEDULER_NAMES = {
    "second": "second",
    "minute": "minute",
    "hour": "hour",
    "day of month": "day",
    "month": "month",
    "day of week": "day_of_week",
}


def _apscheduler_field(field: cron.CronField) -> str:
    if field.star:
        return "*"
    if field.name == "day of week":  # by name: APScheduler 3.x's 0 is Monday, cron's is Sunday
        return ",".join(cron.DAYS[v] for v in sorted(field.values))
    return ",".join(str(v) for v in sorted(field.values))


def build_trigger(schedule: str, timezone: tzinfo | str, *, task: str | None = None) -> BaseTrigger:
    """The APScheduler trigger of `schedule`; ScheduleError (naming `task`) when it is bad."""
    try:
        fields = cron.parse(schedule, seconds=True)
    except ValueError as exc:
        raise ScheduleError(schedule, str(exc), task) from exc
    parsed: dict[str, Any] = {_APSCHEDULER_NAMES[name]: _apscheduler_field(f) for name, f in fields.items()}
    parsed.setdefault("second", "0")
    try:
        if not fields["day of month"].star and not fields["day of week"].star:
            by_day = CronTrigger(**{**parsed, "day_of_week": "*"}, timezone=timezone)
            by_weekday = CronTrigger(**{**parsed, "day": "*"}, timezone=timezone)
            return OrTrigger([by_day, by_weekday])
        return CronTrigger(**parsed, timezone=timezone)
    except (ValueError, TypeError, LookupError) as exc:  # e.g. an unknown time zone
        raise ScheduleError(schedule, str(exc), task) from exc
