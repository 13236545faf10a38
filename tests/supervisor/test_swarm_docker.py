"""The same deploys on a one-node Docker Swarm (scheduler = "swarm"): a service per release x
process type, each task checked and routed at 127.0.0.1 and the port Docker picked for it.

The session makes the swarm (`docker swarm init --advertise-addr 127.0.0.1`) and leaves it at
the end, even after a failure; an engine already in a swarm is used as it is and left in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy import Proxy
from supervisor.deploy.supervisor import Supervisor
from supervisor.deploy.watch import Watcher
from supervisor.model.spec import Config
from supervisor.runtime.select import build_runtime
from supervisor.runtime.services import LABEL_TASK
from supervisor.store.releases import StateStore
from tests.utils import LabellingRuntime, Load, Stack, get, make_config

pytestmark = pytest.mark.docker
HOST = "swarm.test"


@pytest.fixture(scope="session")
def swarm(docker_client: Any) -> Iterator[None]:
    swarm_state = docker_client.info().get("Swarm") or {}
    made = False
    if swarm_state.get("LocalNodeState") != "active":
        docker_client.swarm.init(advertise_addr="127.0.0.1")
        made = True
    elif not swarm_state.get("ControlAvailable"):
        pytest.skip("the engine is a Swarm worker; these tests need a manager")
    try:
        yield
    finally:
        if made:
            with contextlib.suppress(Exception):
                docker_client.swarm.leave(force=True)


def app_def(image: str, **extra: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "image": image,
        "scheduler": "swarm",
        "hosts": [HOST],
        "retire_after": 0,
        "stop_timeout": 2,
        "drain_timeout": 5,
        "processes": {"web": {"scale": 2}},
        "healthchecks": {"web": [{"type": "startup", "name": "health", "path": "/health",
                                  "content": "ok", "attempts": 20, "timeout": 2, "wait": 0.2}]},
    }
    app.update(extra)
    return app


def services(docker_client: Any, config: Config, **labels: str) -> list[Any]:
    wanted = [f"dockyard.instance={config.server.instance}"]
    wanted += [f"dockyard.{k}={v}" for k, v in labels.items()]
    return list(docker_client.services.list(filters={"label": wanted}))


@contextlib.asynccontextmanager
async def swarm_stack(config: Config, docker_client: Any, state: StateStore | None = None,
                      clean: bool = True) -> AsyncIterator[Stack]:
    state = state or StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    await proxy.start("127.0.0.1", 0)
    runtime = await build_runtime(config, LabellingRuntime(docker_client))
    sup = Supervisor(config, runtime, proxy, state)
    try:
        yield Stack(sup, proxy, state, config)
    finally:
        await sup.retirer.close()
        await proxy.stop(1.0)
        if clean:
            for service in services(docker_client, config):
                with contextlib.suppress(Exception):
                    service.remove()
            state.close()


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_ten_swaps_under_load_fail_no_request_and_leave_old_releases_behind(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with swarm_stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        assert [sv.name for sv in services(docker_client, config)] == [f"{config.server.instance}_web_web_r1"]
        windows: list[tuple[float, float, str]] = []  # deploy returned .. next deploy starts
        order = ["v2", "v1"] * 5
        async with Load(s.base + "/", HOST, rate=200) as load:
            await asyncio.sleep(0.5)
            for version in order:
                if windows:
                    windows[-1] = (windows[-1][0], time.monotonic(), windows[-1][2])
                report = await s.sup.deploy("web", app_images[version])
                assert report.ok, report.reason
                windows.append((time.monotonic(), float("inf"), version))
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.3)
        await s.sup.retirer.wait_idle()
        assert load.failures == [], load.failures[:5]
        assert len(load.results) > 200 * 5
        for returned, next_start, version in windows:
            during = [b.split()[0] for start, _, _, b in load.results if returned <= start < next_start]
            assert during and set(during) == {version}, (version, sorted(set(during)))
        # every older release's service is gone; the serving one runs 2 tasks
        [left] = services(docker_client, config)
        assert left.name.endswith("_r11") and len(s.sup.targets("web")) == 2


async def test_a_failed_check_keeps_the_old_release_and_leaves_no_service(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with swarm_stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        before = s.sup.targets("web")
        base = config.apps["web"]
        check = dataclasses.replace(base.healthchecks["web"][0], content="not-there", attempts=2)
        bad = dataclasses.replace(base, healthchecks={"web": (check,)})
        async with Load(s.base + "/", HOST, rate=100) as load:
            from supervisor.deploy.flow import deploy

            report = await deploy(s.sup.ctx, bad, app_images["v2"])
        assert not report.ok and "not-there" in (report.reason or "")
        assert load.failures == [] and {b.split()[0] for *_, b in load.results} == {"v1"}
        assert s.sup.targets("web") == before
        assert [sv.name for sv in services(docker_client, config)] == [f"{config.server.instance}_web_web_r1"]


async def test_rollback_starts_the_previous_release_as_a_new_service(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with swarm_stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        assert (await s.sup.deploy("web", app_images["v2"])).ok
        assert (await get(s.base + "/", HOST))[1].startswith("v2 ")
        report = await s.sup.rollback("web")
        assert report.ok, report.reason
        assert (await get(s.base + "/", HOST))[1].startswith("v1 ")
        await s.sup.retirer.wait_idle()
        [left] = services(docker_client, config)
        assert left.name.endswith("_r3") and left.attrs["Spec"]["Labels"]["dockyard.release"] == "3"
        # ps shows each task's node; `dockyard nodes` the node with its tasks
        rows = await s.sup.ps("web")
        assert len(rows) == 2 and all(r["node"] and r["serving"] and r["release"] == 3 for r in rows)
        [node] = await s.sup.nodes()
        assert (node["state"], node["availability"], node["role"]) == ("ready", "active", "manager")
        assert node["hostname"] == rows[0]["node"] and node["tasks"] == sorted(r["name"] for r in rows)


async def test_scale_up_and_down_under_load_fails_no_request(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with swarm_stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        async with Load(s.base + "/", HOST, rate=200) as load:
            await asyncio.sleep(0.3)
            assert (await s.sup.scale("web", {"web": 4}))["web"] == 4
            assert len(s.sup.targets("web")) == 4
            await asyncio.sleep(0.3)
            [kept] = [c for c in s.sup.serving["web"].containers if c.id.endswith(".1")]
            assert (await s.sup.scale("web", {"web": 1}))["web"] == 1
            assert s.sup.targets("web") == [f"127.0.0.1:{kept.ports[5000]}"]
            await s.sup.retirer.wait_idle()
            await asyncio.sleep(0.5)
        assert load.failures == [], load.failures[:5]
        [service] = services(docker_client, config)
        assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
        running = [t for t in service.tasks({"desired-state": "running"}) if t["Status"]["State"] == "running"]
        assert [t["ID"] for t in running] == [kept.labels[LABEL_TASK]]  # Swarm removed the stopped ones


async def test_a_killed_task_leaves_the_routes_and_comes_back_checked(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with swarm_stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        watcher = Watcher(s.sup.ctx, period=3600)
        watcher.start()
        try:
            victim = sorted(s.sup.serving["web"].containers, key=lambda c: c.id)[0]
            target = f"127.0.0.1:{victim.ports[5000]}"
            task = docker_client.api.inspect_task(victim.labels[LABEL_TASK])
            await asyncio.sleep(0.5)  # the watcher has its first picture
            killed_at = time.monotonic()
            docker_client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"]).kill()
            await wait_for(lambda: target not in s.sup.targets("web"), 5, "the route to go")
            left_after = time.monotonic() - killed_at
            await wait_for(lambda: len(s.sup.targets("web")) == 2, 30, "the replacement task")
            back = {c.id: c for c in s.sup.serving["web"].containers}[victim.id]
            assert back.labels[LABEL_TASK] != victim.labels[LABEL_TASK]  # Swarm's new task
            assert f"127.0.0.1:{back.ports[5000]}" in s.sup.targets("web")
            assert (await get(s.base + "/", HOST))[0] == 200
            print(f"\nkilled task left the route table after {left_after * 1000:.0f} ms")
        finally:
            await watcher.close()


async def test_a_restarted_daemon_adopts_the_services_without_touching_them(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    state = StateStore(config.server.state_dir)
    try:
        async with swarm_stack(config, docker_client, state, clean=False) as s:
            assert (await s.sup.deploy("web")).ok
            targets = sorted(s.sup.targets("web"))
            tasks = sorted(c.labels[LABEL_TASK] for c in s.sup.serving["web"].containers)
        [service] = services(docker_client, config)
        version = service.attrs["Version"]["Index"]
        async with swarm_stack(config, docker_client, state) as s2:
            await s2.sup.adopt()
            assert sorted(s2.sup.targets("web")) == targets
            assert sorted(c.labels[LABEL_TASK] for c in s2.sup.serving["web"].containers) == tasks
            service.reload()
            assert service.attrs["Version"]["Index"] == version  # not updated, not scaled
            assert (await get(s2.base + "/", HOST))[1].startswith("v1 ")
    finally:
        for left in services(docker_client, config):
            left.remove()


async def test_a_cron_task_runs_as_a_swarm_job(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], swarm: None
) -> None:
    from scheduler import Scheduler

    cron = [{"id": "greet", "command": "echo hello from $DOCKYARD_APP; exit 4", "schedule": "0 0 1 1 *"}]
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], cron=cron)})
    runtime = await build_runtime(config, LabellingRuntime(docker_client))
    seen: list[str] = []
    sched = Scheduler(config, runtime, lambda app: (app_images["v1"], 1))
    try:

        async def watch() -> None:  # the job is a service while it runs
            while True:
                seen.extend(sv.attrs["Spec"]["Mode"].__str__() for sv in services(docker_client, config))
                await asyncio.sleep(0.1)

        watching = asyncio.ensure_future(watch())
        record = await sched.run_now("web", "greet")
        watching.cancel()
        assert (record.status, record.exit_code) == ("failed", 4), record
        assert "hello from web" in record.output
        assert any("ReplicatedJob" in mode for mode in seen)
        assert services(docker_client, config) == []  # removed after the run
    finally:
        await sched.stop()
        sched.close()
