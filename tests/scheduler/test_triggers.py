"""Schedule strings -> triggers: cron's meaning (Sunday is 0 and 7, day-of-month OR day-of-week)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.errors import ScheduleError, SchedulerError
from scheduler.triggers import build_trigger

START = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)  # a Thursday


def fires(schedule: str, count: int = 3, tz: str = "UTC", start: datetime = START) -> list[str]:
    trigger = build_trigger(schedule, tz)
    out: list[str] = []
    prev = None
    now = start
    for _ in range(count):
        nxt = trigger.get_next_fire_time(prev, now)
        assert nxt is not None
        out.append(nxt.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M:%S"))
        prev, now = nxt, nxt
    return out


def test_five_fields() -> None:
    assert fires("*/15 * * * *") == [
        "Thu 2026-01-01 00:15:00", "Thu 2026-01-01 00:30:00", "Thu 2026-01-01 00:45:00"
    ]


@pytest.mark.parametrize(
    ("alias", "first"),
    [
        ("@hourly", "Thu 2026-01-01 01:00:00"),
        ("@daily", "Fri 2026-01-02 00:00:00"),
        ("@midnight", "Fri 2026-01-02 00:00:00"),
        ("@weekly", "Sun 2026-01-04 00:00:00"),
        ("@monthly", "Sun 2026-02-01 00:00:00"),
        ("@yearly", "Fri 2027-01-01 00:00:00"),
        ("@annually", "Fri 2027-01-01 00:00:00"),
        ("@DAILY", "Fri 2026-01-02 00:00:00"),
    ],
)
def test_aliases(alias: str, first: str) -> None:
    assert fires(alias, 1) == [first]


def test_sunday_is_zero_and_seven_not_monday() -> None:
    # APScheduler 3.x's own day_of_week 0 is Monday; cron's is Sunday.
    assert fires("0 9 * * 0", 1) == ["Sun 2026-01-04 09:00:00"]
    assert fires("0 9 * * 7", 1) == ["Sun 2026-01-04 09:00:00"]
    assert fires("0 9 * * sun", 1) == ["Sun 2026-01-04 09:00:00"]
    assert fires("0 9 * * 1-5", 3) == [
        "Thu 2026-01-01 09:00:00", "Fri 2026-01-02 09:00:00", "Mon 2026-01-05 09:00:00"
    ]
    assert fires("0 9 * * 5-6", 2) == ["Fri 2026-01-02 09:00:00", "Sat 2026-01-03 09:00:00"]


def test_seven_is_sunday_in_ranges_lists_and_steps() -> None:
    # The one grammar (supervisor.config.cron) reads day of week 0-7 as cron does.
    assert fires("0 9 * * 5-7", 3) == [
        "Fri 2026-01-02 09:00:00", "Sat 2026-01-03 09:00:00", "Sun 2026-01-04 09:00:00"
    ]
    assert fires("0 9 * * 6,7", 2) == ["Sat 2026-01-03 09:00:00", "Sun 2026-01-04 09:00:00"]
    assert fires("0 9 * * 0-7/7", 2) == ["Sun 2026-01-04 09:00:00", "Sun 2026-01-11 09:00:00"]


def test_the_config_accepts_what_the_trigger_builder_accepts() -> None:
    from supervisor.config.validators import cron_schedule

    for schedule in ("0 9 * * 7", "0 9 * * 5-7", "0 0 13 * fri", "@weekly", "5/20 3 * * *"):
        assert cron_schedule(schedule) is None
        build_trigger(schedule, "UTC")
    for schedule in ("* * * * 8", "61 * * * *", "@often"):
        message = cron_schedule(schedule)
        assert message is not None
        with pytest.raises(ScheduleError) as info:
            build_trigger(schedule, "UTC")
        assert info.value.reason == message


def test_day_of_month_or_day_of_week() -> None:
    # Both restricted: either matches (cron, robfig/cron). Jan 2026: the 13th is a Tuesday.
    assert fires("0 0 13 * fri", 3) == [
        "Fri 2026-01-02 00:00:00", "Fri 2026-01-09 00:00:00", "Tue 2026-01-13 00:00:00"
    ]
    # One a star: both must match, i.e. the other alone decides.
    assert fires("0 0 13 * *", 1) == ["Tue 2026-01-13 00:00:00"]


def test_names_steps_lists_and_question_mark() -> None:
    assert fires("0 0 1 jan,jul ?", 2) == ["Wed 2026-07-01 00:00:00", "Fri 2027-01-01 00:00:00"]
    assert fires("5/20 3 * * *", 3) == [
        "Thu 2026-01-01 03:05:00", "Thu 2026-01-01 03:25:00", "Thu 2026-01-01 03:45:00"
    ]


def test_seconds_field_for_tests() -> None:
    assert fires("*/10 * * * * *", 2) == ["Thu 2026-01-01 00:00:30", "Thu 2026-01-01 00:00:40"]


def test_timezone() -> None:
    trigger = build_trigger("0 9 * * *", "Europe/Paris")
    nxt = trigger.get_next_fire_time(None, START)
    assert nxt.tzinfo is not None and nxt.astimezone(ZoneInfo("Europe/Paris")).hour == 9
    assert nxt.astimezone(UTC).hour == 8


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("* * *", "must have 5 fields"),
        ("", "got 0 field(s)"),
        ("@often", "unknown schedule alias"),
        ("61 * * * *", 'minute field "61": "61" is not in 0-59'),
        ("* 24 * * *", 'hour field "24"'),
        ("* * 0 * *", 'day of month field "0": "0" is not in 1-31'),
        ("* * * 13 *", 'month field "13": "13" is not in 1-12 or jan-dec'),
        ("* * * * 8", 'day of week field "8": "8" is not in 0-7 or sun-sat'),
        ("* * * * mon-sun", "goes backwards"),
        ("30-10 * * * *", "goes backwards"),
        ("*/0 * * * *", 'step "0"'),
        ("1,,2 * * * *", "empty list element"),
        ("x * * * *", 'minute field "x"'),
    ],
)
def test_bad_schedules_say_why(schedule: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as info:
        build_trigger(schedule, "UTC", task="hello.cleanup")
    message = str(info.value)
    assert fragment in message
    assert message.startswith("cron task 'hello.cleanup': bad schedule")
    assert isinstance(info.value, SchedulerError)


def test_bad_timezone() -> None:
    with pytest.raises(ScheduleError, match="Mars/Olympus"):
        build_trigger("* * * * *", "Mars/Olympus")
