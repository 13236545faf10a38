"""Schedule strings -> APScheduler 3.x triggers, with cron's (and Dokku's robfig/cron) meaning.

Accepted:
- 5 fields, ``minute hour day-of-month month day-of-week``, as robfig/cron reads them
  (names jan-dec and sun-sat, ranges, lists, steps, ``?`` as ``*``);
- the aliases @yearly @annually @monthly @weekly @daily @midnight @hourly;
- 6 fields with a leading seconds field (robfig/cron's optional seconds). The config loader
  does not accept it; it exists for tests and sub-minute experiments.

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
from supervisor.config.validators import CRON_ALIASES as ALIASES
from supervisor.config.validators import CRON_DAYS as _DAYS
from supervisor.config.validators import CRON_MONTHS as _MONTHS

# name, low, high, value names (index 0 = low)
_FIELDS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "second": (0, 59, ()),
    "minute": (0, 59, ()),
    "hour": (0, 23, ()),
    "day": (1, 31, ()),
    "month": (1, 12, _MONTHS),
    "day_of_week": (0, 7, _DAYS),  # 7 is Sunday too
}
_LABELS = {"day": "day of month", "day_of_week": "day of week"}


def expand(schedule: str, task: str | None = None) -> list[str]:
    """The fields of `schedule` (aliases resolved): 5, or 6 with leading seconds."""
    text = schedule.strip()
    if text.startswith("@"):
        resolved = ALIASES.get(text.lower())
        if resolved is None:
            known = ", ".join(sorted(ALIASES))
            raise ScheduleError(schedule, f"unknown alias (known: {known})", task)
        text = resolved
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            schedule,
            "needs 5 fields (minute hour day-of-month month day-of-week) or an @ alias, "
            f"got {len(fields)} field(s)",
            task,
        )
    return fields


def _value(text: str, name: str) -> int:
    low, high, names = _FIELDS[name]
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + (1 if name == "month" else 0)
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise ValueError(f"{_LABELS.get(name, name)} value {text!r} is not in {allowed}")
    return int(text)


def parse_field(text: str, name: str) -> tuple[frozenset[int], bool]:
    """The values one field allows, and whether it is a bare star (robfig/cron's star bit)."""
    low, high, _ = _FIELDS[name]
    if name == "day_of_week":
        high = 6
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise ValueError(f"empty list element in {_LABELS.get(name, name)} {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} must be a positive integer")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
            star = star or step == 1
        else:
            start_text, dash, end_text = base.partition("-")
            start = _value(start_text, name)
            end = _value(end_text, name) if dash else (high if slash else start)
            if end < start:
                raise ValueError(f"range {base!r} goes backwards")
        values.update(range(start, end + 1, step))
    if name == "day_of_week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), star


def _apscheduler_field(values: frozenset[int], name: str, star: bool) -> str:
    if star:
        return "*"
    if name == "day_of_week":
        return ",".join(_DAYS[v] for v in sorted(values))
    return ",".join(str(v) for v in sorted(values))


def build_trigger(schedule: str, timezone: tzinfo | str, *, task: str | None = None) -> BaseTrigger:
    """The APScheduler trigger of `schedule`; ScheduleError (naming `task`) when it is bad."""
    fields = expand(schedule, task)
    names = ["minute", "hour", "day", "month", "day_of_week"]
    if len(fields) == 6:
        names.insert(0, "second")
    parsed: dict[str, Any] = {}
    stars: dict[str, bool] = {}
    try:
        for text, name in zip(fields, names, strict=True):
            values, star = parse_field(text, name)
            parsed[name] = _apscheduler_field(values, name, star)
            stars[name] = star
    except ValueError as exc:
        raise ScheduleError(schedule, str(exc), task) from exc
    if "second" not in parsed:
        parsed["second"] = "0"
    try:
        if not stars["day"] and not stars["day_of_week"]:
            by_day = CronTrigger(**{**parsed, "day_of_week": "*"}, timezone=timezone)
            by_weekday = CronTrigger(**{**parsed, "day": "*"}, timezone=timezone)
            return OrTrigger([by_day, by_weekday])
        return CronTrigger(**parsed, timezone=timezone)
    except (ValueError, TypeError, LookupError) as exc:  # e.g. an unknown time zone
        raise ScheduleError(schedule, str(exc), task) from exc
