"""The reload plan is a pure function of two configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from proxy.options import ProxyOptions
from scheduler.plan import ReloadPlan, plan, plan_configs, tasks_of
from supervisor.model.spec import AppSpec, Config, CronSpec, ServerSpec


def config(tz: str = "UTC", **apps: tuple[CronSpec, ...]) -> Config:
    return Config(
        path=Path("dockyard.toml"),
        server=ServerSpec(timezone=tz),
        proxy=ProxyOptions(),
        apps={name: AppSpec(name=name, cron=cron) for name, cron in apps.items()},
    )


A = CronSpec("a", "echo a", "* * * * *")
B = CronSpec("b", "echo b", "@daily")
C = CronSpec("c", "echo c", "@hourly")


def test_first_load_adds_everything() -> None:
    assert plan_configs(None, config(hello=(A, B))) == ReloadPlan(
        added=(("hello", "a"), ("hello", "b"))
    )


def test_added_removed_changed() -> None:
    old = config(hello=(A, B), other=(C,))
    new = config(hello=(A, replace(B, schedule="@weekly"), C))
    result = plan_configs(old, new)
    assert result.added == (("hello", "c"),)
    assert result.removed == (("other", "c"),)
    assert result.changed == (("hello", "b"),)


def test_any_field_change_is_a_change() -> None:
    for changed in (
        replace(A, command="echo x"),
        replace(A, concurrency_policy="forbid"),
        replace(A, timeout=5.0),
    ):
        assert plan({("h", "a"): A}, {("h", "a"): changed}).changed == (("h", "a"),)


def test_same_config_is_empty() -> None:
    assert plan_configs(config(hello=(A, B)), config(hello=(A, B))).empty


def test_timezone_change_reschedules_all() -> None:
    result = plan_configs(config(hello=(A, B)), config("Europe/Paris", hello=(A, B)))
    assert result.changed == (("hello", "a"), ("hello", "b"))
    assert not result.added and not result.removed


def test_tasks_of() -> None:
    assert tasks_of(config(x=(A,), y=(A,))) == {("x", "a"): A, ("y", "a"): A}
