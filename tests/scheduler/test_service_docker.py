"""The Scheduler against the real Docker engine: runs, policies, timeouts, deploys, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler import LABEL_CRON, ScheduleError, Scheduler, UnknownTask
from supervisor.model import defaults
from supervisor.model.spec import Config, CronSpec
from supervisor.runtime.docker import DockerRuntime

from .utils import EXTRA_LABELS, Releases, make_config, wait_for

pytestmark = pytest.mark.docker

EVERY_SECOND = "* * * * * *"  # the seconds-level form the trigger builder accepts for tests
NEVER = "0 0 1 1 *"  # once a year: tasks the tests fire by hand


@pytest.fixture
def runtime(docker_client: Any) -> DockerRuntime:
    return DockerRuntime(docker_client)


@pytest.fixture
async def make_scheduler(
    runtime: DockerRuntime, app_images: dict[str, str]
) -> AsyncIterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(config: Config, releases: Releases | None = None, **kwargs: Any) -> Scheduler:
        sched = Scheduler(
            config, runtime, releases or Releases(app_images["v1"]), extra_labels=EXTRA_LABELS,
            **kwargs,
        )
        made.append(sched)
        return sched

    yield make
    for sched in made:
        await sched.stop()
        sched.close()


def cron_containers(docker_client: Any, config: Config) -> list[Any]:
    filters = {"label": [f"{defaults.LABEL_INSTANCE}={config.server.instance}", LABEL_CRON]}
    # sparse: one list call, no inspect of each (a run's container removed meanwhile would 404)
    return list(docker_client.containers.list(all=True, filters=filters, sparse=True))


def at(seconds: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


async def test_scheduled_task_runs_and_is_recorded(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler], docker_client: Any
) -> None:
    # Every second on a loaded machine, runs may overlap past the default max_concurrent (3)
    # and be skipped (tests/scheduler/test_cron_concurrency.py); this test is about a run.
    task = CronSpec("greet", "echo $GREETING from $DOCKYARD_CRON_TASK", EVERY_SECOND,
                    max_concurrent=defaults.MAX_CRON_CONCURRENT)
    config = make_config(tmp_path, task)
    sched = make_scheduler(config)
    await sched.start()
    [row] = sched.list("hello")
    assert row["id"] == "greet" and row["next_run"] and not row["suspended"]
    runs = await wait_for(lambda: [r for r in sched.runs("hello", "greet") if r.status != "running"])
    record = runs[-1]
    assert (record.status, record.exit_code) == ("ok", 0)
    assert record.output.strip() == "hi from greet"
    assert record.scheduled is not None and not record.manual
    assert record.image.endswith(":v1") and record.release == 1
    assert record.container.split(".", 1)[1].startswith("hello.cron.greet.")
    await sched.stop()
    await asyncio.sleep(0.2)
    assert cron_containers(docker_client, config) == []  # removed after each run
    last = sched.list("hello")[0]["last"]
    assert last["status"] == "ok" and last["exit_code"] == 0


async def test_failing_command_records_exit_code_and_streams(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    task = CronSpec("fail", "echo one; echo two >&2; exit 3", NEVER)
    sched = make_scheduler(make_config(tmp_path, task))
    lines: list[str] = []
    record = await sched.run_now("hello", "fail", lines.append)
    assert (record.status, record.exit_code, record.manual) == ("failed", 3, True)
    assert sorted(lines) == ["one", "two"]  # stdout and stderr may interleave either way
    assert "one" in record.output and "two" in record.output
    assert sched.runs("hello", "fail") == [record]


async def test_forbid_skips_an_overlapping_run(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    task = CronSpec("slow", "echo started; sleep 1", NEVER, concurrency_policy="forbid")
    sched = make_scheduler(make_config(tmp_path, task))
    started = asyncio.Event()
    first = asyncio.ensure_future(
        sched.run_now("hello", "slow", lambda line: started.set())
    )
    await asyncio.wait_for(started.wait(), 10)
    skipped = await sched.run_scheduled("hello", "slow", at(1))
    assert skipped is not None and skipped.status == "skipped" and skipped.exit_code is None
    assert "still going" in skipped.output
    assert (await first).status == "ok"
    # Nothing going any more: the next time runs.
    ran = await sched.run_scheduled("hello", "slow", at(2))
    assert ran is not None and ran.status == "ok"
    assert [r.status for r in sched.runs("hello", "slow")] == ["ok", "skipped", "ok"]


async def test_replace_stops_the_running_one(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler], docker_client: Any
) -> None:
    command = "trap 'exit 143' TERM; echo started; sleep 30 & wait; echo finished"
    task = CronSpec("swap", command, NEVER, concurrency_policy="replace")
    config = make_config(tmp_path, task)
    sched = make_scheduler(config)
    old = asyncio.ensure_future(sched.run_scheduled("hello", "swap", at(1)))
    await wait_for(lambda: [c for c in cron_containers(docker_client, config) if c.status == "running"])
    new = asyncio.ensure_future(sched.run_scheduled("hello", "swap", at(2)))
    old_record = await asyncio.wait_for(old, 15)
    assert old_record is not None and old_record.status == "replaced"
    assert "finished" not in old_record.output
    # The new one is now the only one going.
    await wait_for(lambda: sched.list("hello")[0]["running"] == 1)
    assert not new.done()
    assert [r.status for r in sched.runs("hello", "swap")] == ["running", "replaced"]


async def test_timeout_stops_the_container(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler], docker_client: Any
) -> None:
    task = CronSpec("hang", "echo before; sleep 30; echo AFTER", NEVER, timeout=1.0)
    config = make_config(tmp_path, task)
    sched = make_scheduler(config)
    record = await asyncio.wait_for(sched.run_now("hello", "hang"), 20)
    assert record.status == "timeout"
    assert record.exit_code not in (0, None)
    assert "before" in record.output and "AFTER" not in record.output
    assert "[timed out after 1s]" in record.output
    assert cron_containers(docker_client, config) == []


async def test_deploy_switches_the_image(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler], app_images: dict[str, str]
) -> None:
    task = CronSpec("version", "echo version=$APP_VERSION release=$DOCKYARD_RELEASE", NEVER)
    releases = Releases(app_images["v1"])
    sched = make_scheduler(make_config(tmp_path, task), releases)
    before = await sched.run_scheduled("hello", "version", at(1))
    releases.deploy(app_images["v2"])
    after = await sched.run_scheduled("hello", "version", at(2))
    releases.deploy(app_images["v1"])  # a rollback is a deploy of the old image
    rolled = await sched.run_now("hello", "version")
    assert before is not None and after is not None
    assert before.output.strip() == "version=v1 release=1"
    assert after.output.strip() == "version=v2 release=2"
    assert rolled.output.strip() == "version=v1 release=3"
    assert after.image == app_images["v2"] and after.release == 2


async def test_not_deployed_is_skipped(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    task = CronSpec("early", "echo hi", NEVER)
    sched = make_scheduler(make_config(tmp_path, task), Releases(None))
    record = await sched.run_now("hello", "early")
    assert record.status == "skipped" and "no release" in record.output


async def test_restart_never_runs_a_time_twice(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    task = CronSpec("once", "echo once", NEVER)
    config = make_config(tmp_path, task)
    first = make_scheduler(config)
    assert (await first.run_scheduled("hello", "once", at(1))) is not None
    await first.stop()
    second = make_scheduler(config)  # a new daemon on the same state
    await second.start()
    assert await second.run_scheduled("hello", "once", at(1)) is None
    assert [r.scheduled for r in second.runs("hello", "once")] == [at(1).timestamp()]


async def test_two_daemons_on_one_state_run_each_time_once(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    from dataclasses import replace

    task = CronSpec("tick", "echo tick", EVERY_SECOND)
    config = make_config(tmp_path, task)
    other = replace(config, server=replace(config.server, instance=config.server.instance + "-b"))
    a, b = make_scheduler(config), make_scheduler(other)
    await a.start()
    await b.start()
    await asyncio.sleep(2.6)
    await a.stop()
    await b.stop()
    scheduled = [r.scheduled for r in a.runs("hello", "tick", 100)]
    assert len(scheduled) >= 2
    assert len(scheduled) == len(set(scheduled))


async def test_suspend_survives_a_restart(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    task = CronSpec("nightly", "echo hi", "@daily")
    config = make_config(tmp_path, task)
    first = make_scheduler(config)
    await first.start()
    first.suspend("hello", "nightly")
    assert first.list()[0]["suspended"] and first.list()[0]["next_run"] is None
    await first.stop()
    second = make_scheduler(config)
    await second.start()
    [row] = second.list("hello")
    assert row["suspended"] and row["next_run"] is None
    second.resume("hello", "nightly")
    [row] = second.list("hello")
    assert not row["suspended"] and row["next_run"].endswith("00:00:00+00:00")


async def test_reload_adds_removes_and_rejects_bad_schedules(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    a = CronSpec("a", "echo a", "@daily")
    b = CronSpec("b", "echo b", "@hourly")
    config = make_config(tmp_path, a)
    sched = make_scheduler(config)
    await sched.start()
    new = make_config(tmp_path, b, instance=config.server.instance)
    result = sched.reload(new)
    assert result.added == (("hello", "b"),) and result.removed == (("hello", "a"),)
    assert [r["id"] for r in sched.list()] == ["b"]
    bad = make_config(tmp_path, CronSpec("b", "echo b", "99 * * * *"), instance=config.server.instance)
    with pytest.raises(ScheduleError, match="hello.b"):
        sched.reload(bad)
    assert sched.list()[0]["schedule"] == "@hourly"  # the old config stays


async def test_unknown_app_or_task(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    sched = make_scheduler(make_config(tmp_path, CronSpec("a", "echo a", NEVER)))
    with pytest.raises(UnknownTask, match="unknown app"):
        await sched.run_now("nope", "a")
    with pytest.raises(UnknownTask, match="no cron task 'zz'"):
        sched.suspend("hello", "zz")
    with pytest.raises(UnknownTask):
        sched.list("nope")


async def test_stop_leaves_a_long_run_and_next_start_removes_it(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler], docker_client: Any
) -> None:
    task = CronSpec("long", "echo going; sleep 30", NEVER)
    config = make_config(tmp_path, task)
    sched = make_scheduler(config, stop_grace=0.3)
    await sched.start()
    started = asyncio.Event()
    run = asyncio.ensure_future(sched.run_now("hello", "long", lambda line: started.set()))
    await asyncio.wait_for(started.wait(), 10)
    await sched.stop()
    assert run.done()
    [record] = sched.runs("hello", "long")
    assert record.status == "failed" and "left running" in record.output
    assert len(cron_containers(docker_client, config)) == 1
    again = make_scheduler(config)
    await again.start()
    assert cron_containers(docker_client, config) == []
