"""The reload plan: a pure diff of the cron tasks of two configs (circus' reload_from_config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.model.spec import Config, CronSpec

TaskKey = tuple[str, str]  # (app, task id)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    added: tuple[TaskKey, ...] = ()
    removed: tuple[TaskKey, ...] = ()
    changed: tuple[TaskKey, ...] = ()  # the spec differs: the job is rescheduled

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def tasks_of(config: Config | None) -> dict[TaskKey, CronSpec]:
    if config is None:
        return {}
    return {(app.name, task.id): task for app in config.apps.values() for task in app.cron}


def timezone_of(config: Config | None) -> str | None:
    return config.server.timezone if config is not None else None


def plan(
    old: Mapping[TaskKey, CronSpec],
    new: Mapping[TaskKey, CronSpec],
    *,
    timezone_changed: bool = False,
) -> ReloadPlan:
    """Which tasks to add, remove and reschedule. A time zone change reschedules every task."""
    added = tuple(sorted(k for k in new if k not in old))
    removed = tuple(sorted(k for k in old if k not in new))
    changed = tuple(
        sorted(k for k in new if k in old and (timezone_changed or old[k] != new[k]))
    )
    return ReloadPlan(added, removed, changed)


def plan_configs(old: Config | None, new: Config) -> ReloadPlan:
    return plan(
        tasks_of(old), tasks_of(new), timezone_changed=timezone_of(old) not in (None, timezone_of(new))
    )
