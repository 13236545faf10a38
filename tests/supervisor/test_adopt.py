"""Daemon start (deploy/adopt.py): which containers a new daemon adopts, removes or retires,
from the engine's labels and SQLite. `Rig.restarted()` is the daemon restart: a new
Supervisor with an empty route table on the same state dir and the same containers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from supervisor.runtime.containers import oneoff_spec, process_spec
from tests.fakes import Behaviour, FakeContainer, Gate, Rig, fast_app, rig

HEALTH = {"web": [{"name": "health", "path": "/health", "attempts": 1, "timeout": 0.5}]}


def web_targets(r: Rig) -> set[str]:
    return set(r.routes.table.get("shop", ()))


async def test_the_current_release_is_adopted_and_routed_without_touching_it(tmp_path: Path) -> None:
    apps = {"shop": fast_app(processes={"web": {"scale": 2}, "worker": {"command": "w"}})}
    async with rig(tmp_path, apps) as r:
        assert (await r.deploy("shop")).ok
        ids = set(r.serving_ids("shop"))
        table = r.routes.table["shop"]
        r.clear()

        r2 = r.restarted()
        await r2.sup.adopt()
        assert set(r2.serving_ids("shop")) == ids
        assert r2.sup.serving["shop"].release == 1
        assert r2.routes.set_apps("shop") == [table]  # routed in one assignment
        assert r.journal.ops("run", "remove", "kill", "stop", "start") == []
        await r2.sup.start_apps()  # it runs already: no deploy
        assert r2.current("shop").number == 1


async def test_orphans_and_finished_one_offs_are_removed(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        app = r.sup.app("shop")
        orphan = await r.runtime.run(process_spec(app, image="app:v0", instance="fake", release=7,
                                                  process="web", index=1))
        cron = await r.runtime.run(oneoff_spec(app, image="app:v1", instance="fake", release=1,
                                               role="cron", command="x", suffix="1"))
        done = await r.runtime.run(oneoff_spec(app, image="app:v1", instance="fake", release=1,
                                               role="cron", command="x", suffix="2"))
        await r.runtime.die(done.id, 0)
        other = await r.runtime.run(process_spec(app, image="app:v1", instance="elsewhere",
                                                 release=1, process="web", index=1))
        r2 = r.restarted()
        await r2.sup.adopt()
        assert orphan.id not in r.runtime.containers
        assert done.id not in r.runtime.containers
        assert cron.id in r.runtime.containers  # a running cron job is left to finish
        assert other.id in r.runtime.containers  # another instance's container: not ours
        assert len(r2.serving_ids("shop")) == 1


async def test_an_interrupted_deploy_is_failed_and_its_containers_removed(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        # what a crash during the checks of release 2 leaves: a pending release, its container
        pending = r.state.begin_release("shop", "app:v2", {}, "deploy")
        spec = process_spec(r.sup.app("shop"), image="app:v2", instance="fake",
                            release=pending.number, process="web", index=1)
        new = await r.runtime.run(spec)
        r2 = r.restarted()
        await r2.sup.adopt()
        rel = r2.state.release("shop", 2)
        assert rel is not None and rel.status == "failed"
        assert rel.reason == "interrupted: the daemon stopped during the deploy"
        assert new.id not in r.runtime.containers  # not the current release: an orphan
        assert r2.sup.serving["shop"].release == 1


async def test_retiring_containers_are_resumed_not_adopted(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(retire_after=0.15)}) as r:
        assert (await r.deploy("shop")).ok
        old = r.serving_ids("shop")
        assert (await r.deploy("shop", "app:v2")).ok
        await r.sup.retirer.close()  # the daemon stops during retire_after
        assert all(cid in r.runtime.containers for cid in old)
        stop_at = {cid: at for cid, _, at in r.state.retiring()}

        r2 = r.restarted()
        r.clear()
        await r2.sup.adopt()
        assert set(r2.serving_ids("shop")).isdisjoint(old)
        assert old[0] not in {c.id for c in r2.sup.serving["shop"].containers}
        await r2.sup.retirer.wait_idle()
        for cid in old:
            assert cid not in r.runtime.containers
            assert 0 <= r.journal.first("stop", cid) < r.journal.first("remove", cid)
        assert time.time() >= stop_at[old[0]]  # not before its timer
        assert r2.state.retiring() == []


async def test_a_dead_adopted_container_starts_out_of_rotation(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}})}) as r:
        assert (await r.deploy("shop")).ok
        dead, alive = r.sup.serving["shop"].containers
        await r.runtime.die(dead.id, 137)
        r2 = r.restarted()
        await r2.sup.adopt()
        assert set(r2.serving_ids("shop")) == {dead.id, alive.id}
        assert r2.ctx.fleet.is_down(dead.id) and not r2.ctx.fleet.is_down(alive.id)
        assert r2.routes.set_apps("shop") == [(f"127.0.0.1:{alive.ports[5000]}",)]


async def test_an_adopted_container_failing_its_check_starts_out_of_rotation(tmp_path: Path) -> None:
    ill: set[str] = set()

    async def sick(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(status=503 if c.name in ill else 200)

    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}}, healthchecks=HEALTH)}) as r:
        r.runtime.default = Behaviour(http=sick)
        assert (await r.deploy("shop")).ok
        ill.add("fake.shop.web.2.r1")  # it falls ill while no daemon runs
        r2 = r.restarted()
        await r2.sup.adopt()
        well = r.runtime.named("fake.shop.web.1.r1")
        assert r2.ctx.fleet.is_down(r.runtime.named("fake.shop.web.2.r1").id)
        assert r2.routes.table["shop"] == (f"127.0.0.1:{well.ports[5000]}",)


async def test_an_adopted_container_whose_probe_only_times_out_stays_in_rotation(tmp_path: Path) -> None:
    """A takeover on a busy machine: the quick probe times out, but the container served until
    the old daemon stopped; out of rotation it would answer 503 for every client."""
    slow: set[str] = set()
    answer = asyncio.Event()

    async def sluggish(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
        if c.name in slow:
            await answer.wait()  # until the test is over: past the check's 0.5 s timeout
        return web.Response(status=200)

    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}}, healthchecks=HEALTH)}) as r:
        r.runtime.default = Behaviour(http=sluggish)
        assert (await r.deploy("shop")).ok
        slow.add("fake.shop.web.2.r1")
        r2 = r.restarted()
        try:
            await r2.sup.adopt()
        finally:
            answer.set()  # the probe has timed out by now; the fake app's server can close at once
        both = [r.runtime.named(f"fake.shop.web.{n}.r1") for n in (1, 2)]
        assert not any(r2.ctx.fleet.is_down(c.id) for c in both)
        assert set(r2.routes.table["shop"]) == {f"127.0.0.1:{c.ports[5000]}" for c in both}


async def test_containers_scaled_down_or_stopped_before_a_restart_are_not_adopted_again(
    tmp_path: Path,
) -> None:
    """A daemon restart during a scale down's (or a stop's) drain: the containers on their way
    out are of the current release, but must finish retiring, not serve again."""
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}}),
                              "blog": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        assert (await r.deploy("blog")).ok
        r.routes.drain_gate = Gate()
        await r.sup.scale("shop", {"web": 1})
        await r.sup.stop("blog")
        await r.routes.drain_gate.entered.wait()
        leaving = [c.id for c in r.runtime.containers.values()
                   if c.name in ("fake.shop.web.2.r1", "fake.blog.web.1.r1")]
        await r.sup.retirer.close()  # the daemon stops mid-drain

        r2 = r.restarted()
        await r2.sup.adopt()
        await r2.sup.start_apps()
        assert [c.name for c in r2.sup.serving["shop"].containers] == ["fake.shop.web.1.r1"]
        assert len(r2.routes.table["shop"]) == 1
        assert "blog" not in r2.sup.serving and r2.routes.table.get("blog", ()) == ()
        await r2.sup.retirer.wait_idle()
        assert all(cid not in r.runtime.containers for cid in leaving)
        assert r2.state.retiring() == []


async def test_start_apps_deploys_what_does_not_run_except_stopped_apps(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "blog": fast_app(), "wiki": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        assert (await r.deploy("wiki")).ok
        await r.sup.stop("wiki")
        r2 = r.restarted()
        await r2.sup.adopt()
        await r2.sup.start_apps()
        assert sorted(r2.sup.serving) == ["blog", "shop"]
        blog = r2.state.current("blog")
        assert blog is not None and blog.kind == "deploy"
        assert r2.current("shop").number == 1
