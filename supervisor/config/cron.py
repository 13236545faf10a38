"""The one cron grammar: what a schedule string means, for the config check and the scheduler.

`parse(schedule)` turns a schedule into the set of values each field allows, or raises
ValueError with a message that names the field. The config validator
(`validators.cron_schedule`) reports that message; the scheduler
(`scheduler.triggers.build_trigger`) turns the parsed fields into an APScheduler trigger.

The grammar is cron's, as robfig/cron (Dokku's parser) reads it:
- 5 fields, `minute hour day-of-month month day-of-week`: a number, a name (`jan`-`dec`,
  `sun`-`sat`, any case), `*` or `?`, a range `a-b`, a list `a,b`, a step `*/n` or `a-b/n`;
  `a/n` runs from a to the field's maximum;
- day of week 0-7, where both 0 and 7 are Sunday (as cron; `*` is 0-6);
- the aliases @yearly @annually @monthly @weekly @daily @midnight @hourly (any case);
- with `seconds=True` (the scheduler's tests only), an optional leading seconds field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # DAYS[n] is day n; 7 is Sunday too
SUNDAY_TOO = 7


@dataclass(frozen=True, slots=True)
class _Range:
    low: int
    high: int  # the highest value a number may name (7 for day of week)
    star_high: int  # the highest value `*` and `a/n` reach (6 for day of week)
    names: tuple[str, ...] = ()
    first_name: int = 0  # the value of names[0]


_SECOND = ("second", _Range(0, 59, 59))
_FIELDS: tuple[tuple[str, _Range], ...] = (
    ("minute", _Range(0, 59, 59)),
    ("hour", _Range(0, 23, 23)),
    ("day of month", _Range(1, 31, 31)),
    ("month", _Range(1, 12, 12, MONTHS, 1)),
    ("day of week", _Range(0, SUNDAY_TOO, 6, DAYS, 0)),
)


@dataclass(frozen=True, slots=True)
class CronField:
    """One field of a parsed schedule: the values it allows, and whether it was a bare `*`
    (robfig/cron's star bit, which decides how day of month and day of week combine)."""

    name: str
    values: frozenset[int]
    star: bool


def parse(schedule: str, *, seconds: bool = False) -> dict[str, CronField]:
    """Field name -> CronField for `schedule` (aliases resolved); ValueError says what is wrong.

    Names: "minute", "hour", "day of month", "month", "day of week" (and "second" when
    `seconds` allows a sixth, leading field). Day of week 7 comes out as 0 (Sunday)."""
    text = schedule.strip()
    if text.startswith("@"):
        resolved = ALIASES.get(text.lower())
        if resolved is None:
            raise ValueError(f"unknown schedule alias {_q(text)} (known: {', '.join(sorted(ALIASES))})")
        text = resolved
    parts = text.split()
    fields = (_SECOND, *_FIELDS) if seconds and len(parts) == 6 else _FIELDS
    if len(parts) != len(fields):
        raise ValueError(
            "must have 5 fields (minute hour day-of-month month day-of-week) or be an @ alias, "
            f"got {len(parts)} field(s) in {_q(schedule)}"
        )
    parsed: dict[str, CronField] = {}
    for part, (name, bounds) in zip(parts, fields, strict=True):
        try:
            values, star = _field(part, bounds)
        except ValueError as exc:
            raise ValueError(f"{name} field {_q(part)}: {exc}") from None
        parsed[name] = CronField(name, values, star)
    return parsed


def _field(text: str, bounds: _Range) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise ValueError("empty list element")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise ValueError(f"step {_q(step_text)} must be a positive integer")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = bounds.low, bounds.star_high
            star = star or step == 1
        else:
            start_text, dash, end_text = base.partition("-")
            start = _value(start_text, bounds)
            end = _value(end_text, bounds) if dash else (max(start, bounds.star_high) if slash else start)
            if end < start:
                raise ValueError(f"range {_q(base)} goes backwards")
        values.update(range(start, end + 1, step))
    if bounds.high == SUNDAY_TOO and SUNDAY_TOO in values:
        values.discard(SUNDAY_TOO)
        values.add(0)
    return frozenset(values), star


def _value(text: str, bounds: _Range) -> int:
    lowered = text.lower()
    if lowered in bounds.names:
        return bounds.names.index(lowered) + bounds.first_name
    if text.isascii() and text.isdigit() and bounds.low <= int(text) <= bounds.high:
        return int(text)
    names = f" or {bounds.names[0]}-{bounds.names[-1]}" if bounds.names else ""
    raise ValueError(f"{_q(text)} is not in {bounds.low}-{bounds.high}{names}")


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
