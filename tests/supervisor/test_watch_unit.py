"""Keeping apps up (deploy/watch.py) on the fakes: a die event takes the container out of the
routes at once, the restart policy brings it back after its checks, periodic probes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from supervisor.deploy import watch
from supervisor.deploy.watch import Watcher
from tests.fakes import Behaviour, FakeContainer, Rig, eventually, fast_app, rig


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "BACKOFF_FIRST", 0.005)


@contextlib.asynccontextmanager
async def watched(tmp_path: Path, **app: Any) -> AsyncIterator[tuple[Rig, Watcher]]:
    apps = {"shop": fast_app(**{"processes": {"web": {"scale": 2}}, **app})}
    async with rig(tmp_path, apps, http="healthchecks" in app) as r:
        assert (await r.deploy("shop")).ok
        watcher = Watcher(r.ctx, period=3600)
        watcher.start()
        await r.runtime.subscribed.wait()
        r.clear()
        try:
            yield r, watcher
        finally:
            await watcher.close()


def target(c: FakeContainer) -> str:
    return f"127.0.0.1:{c.ports[5000]}"


async def test_a_dead_container_leaves_the_routes_at_once_and_stays_out_with_restart_no(tmp_path: Path) -> None:
    async with watched(tmp_path, restart="no") as (r, _):
        one, two = (r.runtime.containers[i] for i in r.serving_ids("shop"))
        await r.runtime.die(one.id, 1)
        await eventually(lambda: r.routes.set_apps("shop")[-1:] == [(target(two),)])
        assert len(r.journal.ops("set_app")) == 1  # one assignment, without it
        assert r.ctx.fleet.is_down(one.id) and r.ctx.fleet.last_exit(one.id) == 1
        await r.runtime.die(two.id, 1)
        await eventually(lambda: r.routes.table["shop"] == ())
        assert r.journal.ops("start") == []


async def test_on_failure_restarts_it_and_it_rejoins_after_its_checks(tmp_path: Path) -> None:
    checks = {"web": [{"name": "up", "path": "/up", "attempts": 1, "timeout": 0.5}]}
    async with watched(tmp_path, restart="on-failure", healthchecks=checks) as (r, _):
        routed_at_check: list[tuple[str, ...]] = []

        async def up(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
            routed_at_check.append(r.routes.table["shop"])
            return web.Response(text="ok")

        one, two = (r.runtime.containers[i] for i in r.serving_ids("shop"))
        one.behaviour = Behaviour(http=up)
        await r.runtime.die(one.id, 3)
        await eventually(lambda: len(r.routes.set_apps("shop")) == 2)
        assert r.journal.ops("start") == [("start", one.id)]
        out, back = r.routes.set_apps("shop")
        assert out == (target(two),)
        assert set(back) == {target(two), target(one)}  # its new port after the restart
        assert routed_at_check == [(target(two),)]  # checked while still out of the routes
        assert r.ctx.fleet.restarts(one.id) == 1 and not r.ctx.fleet.is_down(one.id)


@pytest.mark.parametrize(("policy", "code", "restarted"),
                         [("on-failure", 0, False), ("always", 0, True), ("no", 137, False),
                          ("unless-stopped", 137, True)])
async def test_the_restart_policy_decides(policy: str, code: int, restarted: bool, tmp_path: Path) -> None:
    async with watched(tmp_path, restart=policy) as (r, _):
        one = r.runtime.containers[r.serving_ids("shop")[0]]
        await r.runtime.die(one.id, code)
        if restarted:
            await eventually(lambda: r.journal.ops("start") == [("start", one.id)])
            await eventually(lambda: not r.ctx.fleet.is_down(one.id))
        else:
            await eventually(lambda: r.ctx.fleet.is_down(one.id))
            await r.sup.retirer.wait_idle()
            assert r.journal.ops("start") == []


async def test_a_crash_loop_is_restarted_up_to_the_policys_limit(tmp_path: Path) -> None:
    """A container that exits again at once on every start: its die event arrives while the
    watcher is still restarting it; each exit must still count against on-failure:3."""
    async with watched(tmp_path, restart="on-failure:3") as (r, _):
        one = r.runtime.containers[r.serving_ids("shop")[0]]
        one.behaviour = Behaviour(exit_code=1)
        await r.runtime.die(one.id, 1)
        await eventually(lambda: len(r.journal.ops("start")) == 3)
        await asyncio.sleep(0.05)  # backoff 5, 10, 20 ms: a fourth start would have come
        assert len(r.journal.ops("start")) == 3
        assert r.ctx.fleet.restarts(one.id) == 3
        assert r.ctx.fleet.is_down(one.id)


async def test_a_container_no_longer_serving_is_not_restarted(tmp_path: Path) -> None:
    async with watched(tmp_path, restart="always") as (r, _):
        old = r.serving_ids("shop")
        gate = r.runtime.gate("start")
        await r.runtime.die(old[0], 1)  # its restart waits in start() ...
        await gate.entered.wait()
        gate.open()
        await eventually(lambda: not r.ctx.fleet.is_down(old[0]))
        r.clear()
        assert (await r.deploy("shop", "app:v2")).ok  # ... a deploy replaces the release
        await r.sup.retirer.wait_idle()  # the old ones die on SIGTERM: not serving, left alone
        assert r.journal.ops("start") == []
        assert len(r.routes.table["shop"]) == 2


async def test_periodic_readiness_takes_out_and_puts_back_liveness_kills(tmp_path: Path) -> None:
    checks = {"web": [
        {"type": "readiness", "name": "ready", "path": "/ready", "attempts": 2, "timeout": 0.5},
        {"type": "liveness", "name": "alive", "path": "/alive", "attempts": 2, "timeout": 0.5},
    ]}
    sick: dict[str, set[str]] = {"/ready": set(), "/alive": set()}

    async def app(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(status=500 if c.name in sick.get(request.path, ()) else 200)

    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}}, healthchecks=checks,
                                               restart="always")}) as r:
        r.runtime.default = Behaviour(http=app)
        assert (await r.deploy("shop")).ok
        watcher = Watcher(r.ctx, period=3600)
        watcher.start()
        await r.runtime.subscribed.wait()
        try:
            one, two = (r.runtime.containers[i] for i in r.serving_ids("shop"))
            r.clear()
            sick["/ready"].add(one.name)
            await watcher.probe_all()
            assert r.journal.ops("set_app") == []  # one failure is not enough (attempts 2)
            await watcher.probe_all()
            assert r.routes.set_apps("shop") == [(target(two),)]
            sick["/ready"].clear()
            await watcher.probe_all()
            assert set(r.routes.set_apps("shop")[-1]) == {target(one), target(two)}

            sick["/alive"].add(two.name)
            await watcher.probe_all()
            await watcher.probe_all()
            assert ("kill", two.id, "SIGKILL") in r.journal.ops("kill")
            await eventually(lambda: ("start", two.id) in r.journal.ops("start"))
        finally:
            await watcher.close()


async def test_a_container_found_dead_at_adoption_is_restarted_by_the_policy(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(restart="on-failure")}) as r:
        assert (await r.deploy("shop")).ok
        (cid,) = r.serving_ids("shop")
        await r.runtime.die(cid, 2)
        r2 = r.restarted()
        await r2.sup.adopt()
        assert r2.routes.table["shop"] == ()
        watcher = Watcher(r2.ctx, period=3600)
        watcher.start()
        try:
            await eventually(lambda: len(r2.routes.table["shop"]) == 1)
            assert r.runtime.containers[cid].status == "running"
        finally:
            await watcher.close()


async def test_an_event_stream_the_engine_closes_marks_the_engine_down(tmp_path: Path) -> None:
    """A dockerd restart shorter than the engine monitor's period: the closed event stream is
    the only sign, and the monitor's next answer then re-adopts (deploy/engine.py)."""
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        ended = asyncio.Event()

        async def closed_by_the_engine(labels: Any) -> AsyncIterator[Any]:
            ended.set()
            return
            yield  # an async generator that ends at once

        r.runtime.events = closed_by_the_engine  # type: ignore[method-assign]
        w = Watcher(r.ctx, period=60)
        w.start()
        try:
            await asyncio.wait_for(ended.wait(), 5)
            await eventually(lambda: not r.ctx.engine.reachable)
            assert r.ctx.engine.outages == 1 and "event stream ended" in r.ctx.engine.error
            assert r.ctx.engine.up()  # what the monitor's next answer does, then it recovers
        finally:
            await w.close()
