"""Issue 18, item 8: "allow" runs of one task are capped (max_concurrent), and `cron list` says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler import Scheduler
from supervisor.config.appjson import parse_app_json
from supervisor.model import defaults
from supervisor.model.errors import ConfigError
from supervisor.model.spec import CronSpec
from supervisor.runtime.docker import DockerRuntime
from tests.scheduler.test_service_docker import NEVER, at, cron_containers
from tests.scheduler.utils import EXTRA_LABELS, Releases, make_config, wait_for
from tests.utils import make_config as make_toml_config


def test_max_concurrent_has_a_default_and_a_range(tmp_path: Path) -> None:
    task = {"command": "x", "schedule": "@daily"}
    config = make_toml_config(tmp_path, {"a": {"image": "x", "cron": [task, {**task, "id": "two", "max_concurrent": 7}]}})
    assert [t.max_concurrent for t in config.apps["a"].cron] == [defaults.CRON_MAX_CONCURRENT, 7]
    with pytest.raises(ConfigError, match=r"apps.a.cron\[0\].max_concurrent: must be an integer 1-100"):
        make_toml_config(tmp_path, {"a": {"image": "x", "cron": [{**task, "max_concurrent": 0}]}})
    from_app_json = parse_app_json('{"cron": [{"command": "x", "schedule": "@daily"}]}', "app.json")
    assert from_app_json.cron[0].max_concurrent == defaults.CRON_MAX_CONCURRENT


@pytest.fixture
async def make_scheduler(docker_client: Any, app_images: dict[str, str]) -> AsyncIterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(config: Any) -> Scheduler:
        sched = Scheduler(config, DockerRuntime(docker_client), Releases(app_images["v1"]), extra_labels=EXTRA_LABELS)
        made.append(sched)
        return sched

    yield make
    for sched in made:
        await sched.stop()
        sched.close()


@pytest.mark.docker
async def test_allow_runs_past_max_concurrent_are_skipped(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler], docker_client: Any
) -> None:
    task = CronSpec("pile", "echo started; sleep 3", NEVER, concurrency_policy="allow", max_concurrent=2)
    config = make_config(tmp_path, task)
    sched = make_scheduler(config)
    going = [asyncio.ensure_future(sched.run_scheduled("hello", "pile", at(i))) for i in (1, 2)]
    await wait_for(lambda: len([c for c in cron_containers(docker_client, config) if c.status == "running"]) == 2, 15)
    [row] = sched.list("hello")
    assert (row["running"], row["max_concurrent"]) == (2, 2)
    third = await sched.run_scheduled("hello", "pile", at(3))
    assert third is not None and third.status == "skipped" and "max_concurrent" in third.output
    assert len(cron_containers(docker_client, config)) == 2  # no third container, no third log thread
    assert [r.status for r in await asyncio.gather(*going)] == ["ok", "ok"]  # type: ignore[union-attr]
