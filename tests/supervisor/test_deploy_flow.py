"""The deploy flow (deploy/flow.py) on the fakes: the happy path in order, and every failure
before the swap leaving the old release serving."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from supervisor.deploy.flow import deploy
from supervisor.model.errors import ContainerGone, RuntimeFailure
from supervisor.model.release import RepoFiles
from supervisor.runtime.protocol import OneOffResult
from tests.fakes import Behaviour, FakeContainer, OneOff, Rig, eventually, fast_app, rig

HEALTH = {"web": [{"name": "health", "path": "/health", "content": "ok", "attempts": 2,
                   "timeout": 0.5, "wait": 0.01}]}


def shop(**extra: Any) -> dict[str, Any]:
    return fast_app(processes={"web": {"scale": 2}, "worker": {"command": "work"}}, **extra)


def release_containers(r: Rig, release: int) -> list[FakeContainer]:
    return [c for c in r.runtime.containers.values() if c.labels["dockyard.release"] == str(release)]


def targets(r: Rig, release: int) -> set[str]:
    return {f"127.0.0.1:{c.ports[5000]}" for c in release_containers(r, release) if c.ports}


async def test_first_deploy_starts_per_scale_checks_warms_then_swaps_once(tmp_path: Path) -> None:
    hits: list[str] = []

    async def health(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
        hits.append(f"{c.name} {request.path} {request.headers['Host']}")
        return web.Response(text="ok")

    async with rig(tmp_path, {"shop": shop(healthchecks=HEALTH)}) as r:
        r.runtime.default = Behaviour(http=health)
        report = await r.deploy("shop")

        assert report.ok and report.release == 1, report.reason
        names = sorted(c.name for c in r.runtime.running(app="shop"))
        assert names == ["fake.shop.web.1.r1", "fake.shop.web.2.r1", "fake.shop.worker.1.r1"]
        # the checks really connected to each web container's published port
        assert sorted(hits) == ["fake.shop.web.1.r1 /health shop.test",
                                "fake.shop.web.2.r1 /health shop.test"]
        new = targets(r, 1)
        route_ops = r.journal.ops("warm", "set_app", "drain", "remove_app")
        assert [op[0] for op in route_ops] == ["warm", "set_app"]
        assert set(route_ops[0][1]) == new and route_ops[0][2] == ()  # warm(new, replacing nothing)
        assert set(route_ops[1][2]) == new
        assert r.routes.options["shop"]["hosts"] == ("shop.test",)
        current = r.state.current("shop")
        assert current is not None and current.number == 1 and current.image == "app:v1"
        assert [s["step"] for s in current.steps] == ["start", "checks", "swap"]
        assert r.events[0]["event"] == "deploying" and r.events[-1]["event"] == "deployed"
        swap = [e for e in r.events if e.get("step") == "swap"]
        assert set(swap[0]["targets"]) == new
        assert r.sup.busy() == {}


async def test_second_deploy_drains_then_stops_the_old_after_retire_after(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop(retire_after=0.15, stop_timeout=0.05)}) as r:
        assert (await r.deploy("shop")).ok
        old_web = [c.id for c in release_containers(r, 1) if c.spec.labels["dockyard.process"] == "web"]
        old_worker = [c.id for c in release_containers(r, 1) if c.id not in old_web]
        v1 = targets(r, 1)
        r.clear()

        report = await r.deploy("shop", "app:v2")
        assert report.ok, report.reason
        v2 = targets(r, 2)
        assert set(r.routes.table["shop"]) == v2
        swap = r.journal.first("set_app")
        warm = r.journal.first("warm")
        assert 0 <= warm < swap
        assert set(r.journal.calls[warm].args[0]) == v2 and set(r.journal.calls[warm].args[1]) == v1
        assert r.routes.set_apps("shop") == [r.routes.table["shop"]]  # exactly one swap
        assert {cid for cid, _, _ in r.state.retiring()} == set(old_web + old_worker)

        await r.sup.retirer.wait_idle()
        drain = r.journal.first("drain")
        assert drain > swap and set(r.journal.calls[drain].args[0]) == v1
        swapped_at = r.journal.calls[swap].at
        for cid in old_web:  # drained, then kept running (Dokku's wait-to-retire): no signal
            assert not any(c.op == "kill" and c.args[0] == cid for c in r.journal.calls)
            # `docker stop` (SIGTERM, then SIGKILL) no earlier than retire_after after the swap
            assert r.journal.first("stop", cid) > drain
            assert r.journal.when("stop", cid) - swapped_at >= 0.15 - 0.01
            assert r.journal.first("remove", cid) > r.journal.first("stop", cid)
        for cid in old_worker:  # workers: SIGTERM at the switch, stopped after stop_timeout
            assert r.journal.first("kill", cid, "SIGTERM") > swap
            assert r.journal.when("stop", cid) - swapped_at < 0.15
        assert release_containers(r, 1) == []
        assert r.state.retiring() == []
        assert [rel.status for rel in r.state.releases("shop")] == ["active", "superseded"]


async def test_repo_files_are_kept_with_the_release_and_settle_on_success(tmp_path: Path) -> None:
    files = RepoFiles(procfile="web: serve\nclock: tick\n", source="git:abc")
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        app = r.sup.app("shop")
        report = await deploy(r.ctx, app, "app:v1", repo=files)
        assert report.ok, report.reason
        assert r.state.repo_files("shop", 1) == files
        assert r.ctx.apps.repo("shop") == files
        assert set(r.sup.config.apps["shop"].processes) == {"web", "clock"}

        # a failed deploy with other files settles nothing
        r.runtime.missing_images.add("app:v2")
        other = RepoFiles(procfile="web: other\n")
        assert not (await deploy(r.ctx, app, "app:v2", repo=other)).ok
        assert r.ctx.apps.repo("shop") == files

        # "current": the serving release's files go on
        assert (await deploy(r.ctx, r.sup.app("shop"), "app:v3")).ok
        assert r.state.repo_files("shop", 3) == files

        # None: a deploy without repository files drops them
        assert (await deploy(r.ctx, r.ctx.apps.base_app("shop"), "app:v4", repo=None)).ok
        assert r.ctx.apps.repo("shop") is None
        assert set(r.sup.config.apps["shop"].processes) == {"web"}


async def test_postdeploy_runs_after_the_swap_and_its_failure_only_warns(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(postdeploy="notify")}) as r:
        r.runtime.oneoff("postdeploy", OneOff(exit_code=2, output="cannot notify"))
        report = await r.deploy("shop")
        assert report.ok
        assert report.warnings == ["postdeploy failed: postdeploy command exited 2: cannot notify"]
        assert r.journal.first("run_oneoff") > r.journal.first("set_app")
        assert r.state.current("shop") is not None


async def test_predeploy_runs_before_any_container(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(predeploy="migrate")}) as r:
        assert (await r.deploy("shop")).ok
        oneoff = r.journal.first("run_oneoff")
        name, command = r.journal.calls[oneoff].args
        assert name.startswith("fake.shop.predeploy.r1.") and command == "migrate"
        assert 0 <= oneoff < r.journal.first("run")


# failures before the swap -----------------------------------------------------------------


async def _exits(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(status=500, text="broken")


FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "image-missing": ({}, "image 'app:v2' not found"),
    "predeploy-exits": ({"predeploy": "migrate"}, "predeploy command exited 3: migrating | boom"),
    "predeploy-timed-out": ({"predeploy": "migrate"}, "predeploy command timed out"),
    "predeploy-vanishes": ({"predeploy": "migrate"}, "no such container: predeploy"),
    "start-fails": ({}, "port is already allocated"),
    "container-exits": ({}, "check 'default' failed on fake.shop.web.2.r2: container is not running (exit code 1)"),
    "http-check-fails": ({"healthchecks": HEALTH}, "check 'health' failed on fake.shop.web.1.r2"),
    "container-vanishes": ({}, "container is not running (exit code None)"),
    "run-gone": ({}, "container fake.shop.worker.1.r2 is gone"),
    "deploy-timeout": ({"deploy_timeout": 0.1}, "deploy timed out after 0.1s"),
    "bug": ({}, "internal error: ValueError: a bug in the runtime"),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_a_failure_before_the_swap_leaves_the_old_release_serving(case: str, tmp_path: Path) -> None:
    extra, reason = FAILURES[case]
    async with rig(tmp_path, {"shop": shop(**extra)}, http=True) as r:
        if "predeploy" in case:
            r.runtime.oneoff("predeploy", OneOff())
        first = await r.deploy("shop")
        assert first.ok, first.reason
        v1_ids = set(r.serving_ids("shop"))
        v1_table = r.routes.table["shop"]
        r.clear()
        r.events.clear()
        gate = None
        if case == "image-missing":
            r.runtime.missing_images.add("app:v2")
        elif case == "predeploy-exits":
            r.runtime.oneoff("predeploy", OneOff(exit_code=3, output="migrating\nboom\n"))
        elif case == "predeploy-timed-out":
            r.runtime.oneoff("predeploy", OneOff(timed_out=True))
        elif case == "predeploy-vanishes":
            r.runtime.fail("run_oneoff", ContainerGone("no such container: predeploy"))
        elif case == "start-fails":
            r.runtime.fail("run", RuntimeFailure("port is already allocated"), match="web.2.r2")
        elif case == "container-exits":
            r.runtime.script("web.2.r2", Behaviour(exit_code=1))
        elif case == "http-check-fails":
            r.runtime.script("web.1.r2", Behaviour(http=_exits))
        elif case == "container-vanishes":
            gate = r.runtime.gate("inspect", match="web.1.r2")
        elif case == "run-gone":
            r.runtime.fail("run", ContainerGone("container fake.shop.worker.1.r2 is gone"), match="worker")
        elif case == "deploy-timeout":
            r.runtime.gate("run", match="web.2.r2")  # never opened
        elif case == "bug":
            r.runtime.fail("run", ValueError("a bug in the runtime"), match="worker")

        task = asyncio.create_task(r.deploy("shop", "app:v2"))
        if gate is not None:
            await gate.entered.wait()
            await r.runtime.vanish(next(c.id for c in release_containers(r, 2) if "web.1" in c.name))
            gate.open()
        report = await task

        assert not report.ok
        assert reason in report.reason
        rel = r.state.release("shop", 2)
        assert rel is not None and rel.status == "failed" and reason in rel.reason
        assert r.events[-1]["event"] == "failed" and reason in r.events[-1]["reason"]
        assert r.journal.ops("set_app", "warm", "remove_app", "drain") == []  # routes untouched
        assert r.routes.table["shop"] == v1_table
        assert release_containers(r, 2) == []  # every new container removed
        assert set(r.serving_ids("shop")) == v1_ids
        assert all(r.runtime.containers[cid].status == "running" for cid in v1_ids)
        current = r.state.current("shop")
        assert current is not None and current.number == 1
        assert r.sup.busy() == {}


async def test_a_cancelled_deploy_fails_the_release_and_removes_its_containers(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop()}) as r:
        assert (await r.deploy("shop")).ok
        r.clear()
        gate = r.runtime.gate("inspect", match=".r2")  # hold the checks
        task = asyncio.create_task(r.deploy("shop", "app:v2"))
        await gate.entered.wait()
        assert len(release_containers(r, 2)) == 3
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rel = r.state.release("shop", 2)
        assert rel is not None and rel.status == "failed"
        assert rel.reason == "interrupted: the deploy was cancelled"
        assert r.events[-1]["event"] == "failed"
        assert release_containers(r, 2) == []
        assert r.journal.ops("set_app") == []
        assert r.sup.busy() == {}


async def test_a_failed_first_deploy_serves_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        r.runtime.script("app:v1", Behaviour(exit_code=137))
        report = await r.deploy("shop")
        assert not report.ok and "exit code 137" in report.reason
        assert r.routes.journal.ops("set_app") == []
        assert r.sup.serving == {} and r.state.current("shop") is None
        assert r.runtime.containers == {}


async def test_checks_run_on_every_new_container_and_warn_only_checks_do_not_fail(tmp_path: Path) -> None:
    checks = {"web": [{"name": "soft", "path": "/soft", "attempts": 1, "timeout": 0.5, "warn": True},
                      {"name": "cmd", "command": ["probe"], "attempts": 1, "timeout": 0.5}]}
    async with rig(tmp_path, {"shop": shop(healthchecks=checks)}, http=True) as r:
        r.runtime.default = dataclasses.replace(r.runtime.default, http=_exits)
        assert (await r.deploy("shop")).ok
        execs = r.journal.ops("exec")
        assert sorted(e[1].split("-", 1)[1] for e in execs) == ["fake.shop.web.1.r1", "fake.shop.web.2.r1"]
        assert all(e[2] == ("probe",) for e in execs)

        r.runtime.exec_result = lambda c, cmd: OneOffResult(1, "not ready")
        report = await r.deploy("shop", "app:v2")
        assert not report.ok and "command exited 1: not ready" in report.reason


async def test_listening_and_uptime_checks_on_host_networking(tmp_path: Path) -> None:
    """`listening` reads /proc/<pid>/net/tcp: the fake container's pid is this process, whose
    sockets include the fake's server on the $PORT dockyard assigned (label dockyard.port)."""
    checks = {"web": [{"name": "port", "listening": True, "attempts": 1, "timeout": 0.3},
                      {"name": "stays-up", "uptime": 0.05, "attempts": 1, "timeout": 0.5}]}
    async with rig(tmp_path, {"shop": fast_app(network="host", healthchecks=checks)}, http=True) as r:
        report = await r.deploy("shop")
        assert report.ok, report.reason
        (web,) = r.runtime.running(app="shop")
        assert r.routes.table["shop"] == (f"127.0.0.1:{web.spec.labels['dockyard.port']}",)

        r.runtime.default = Behaviour()  # a container that listens on nothing
        report = await r.deploy("shop", "app:v2")
        assert not report.ok
        assert "check 'port' failed" in report.reason  # nothing listens (or the last try timed out)


async def test_an_uptime_check_fails_a_container_that_exits(tmp_path: Path) -> None:
    checks = {"web": [{"name": "stays-up", "uptime": 0.1, "attempts": 1, "timeout": 0.5}]}
    async with rig(tmp_path, {"shop": fast_app(healthchecks=checks)}) as r:
        gate = r.runtime.gate("inspect")  # the first look at the container waits ...
        task = asyncio.create_task(r.deploy("shop"))
        await gate.entered.wait()
        (web,) = r.runtime.running(app="shop")
        await r.runtime.die(web.id, 1)  # ... while it crashes
        gate.open()
        report = await task
        assert not report.ok and "container is not running" in report.reason


@pytest.mark.parametrize("how", ["deploy-timeout", "another-start-fails"])
async def test_a_container_created_after_the_deploy_gave_up_is_removed_too(how: str, tmp_path: Path) -> None:
    """DockerRuntime.run is a thread: cancelling the deploy's wait does not stop the engine,
    which creates the container after the failed deploy cleaned up."""
    async with rig(tmp_path, {"shop": shop(deploy_timeout=0.1)}) as r:
        r.runtime.runs_in_threads = True
        slow = r.runtime.gate("run", match="web.2.r1")
        if how == "another-start-fails":
            r.runtime.fail("run", RuntimeFailure("no space left on device"), match="worker")
        report = await r.deploy("shop")
        assert not report.ok
        assert ("timed out" if how == "deploy-timeout" else "no space left") in report.reason
        slow.open()  # the engine finishes the start it was asked for
        await eventually(lambda: any(op[1].endswith("web.2.r1") for op in r.journal.ops("remove")))
        await r.sup.retirer.wait_idle()
        assert r.runtime.containers == {}
        assert r.state.retiring() == []
