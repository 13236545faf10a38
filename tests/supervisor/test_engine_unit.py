"""Issue #18 item 14 on the fakes: Docker away and back (deploy/engine.py). The routes never
depend on Docker; the monitor records the outage, the watcher holds its checks, and recovery
re-adopts, restarting what the engine stopped."""

from __future__ import annotations

from pathlib import Path

from supervisor.deploy.engine import EngineMonitor
from supervisor.deploy.watch import Watcher
from supervisor.model.errors import RuntimeFailure
from tests.fakes import fast_app, rig

CHECKS = {"web": [{"type": "readiness", "name": "ready", "command": ["true"], "attempts": 1}]}


async def test_an_outage_is_recorded_routes_stay_and_a_stopped_container_is_restarted(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}},
                                               healthchecks=CHECKS)}, http=True) as r:
        assert (await r.deploy("shop")).ok
        routed = r.routes.table["shop"]
        monitor = EngineMonitor(r.ctx)
        assert await monitor.check() and r.ctx.engine.reachable

        r.runtime.unreachable = True
        assert not await monitor.check()
        assert not r.ctx.engine.reachable and "Connection refused" in r.ctx.engine.error
        assert r.ctx.engine.outages == 1
        watcher = Watcher(r.ctx, period=3600)
        r.clear()
        await watcher.probe_all()  # held: exec checks would fail for Docker's sake
        assert r.journal.ops("exec") == [] and r.routes.table["shop"] == routed

        # what a dockerd restart does: the containers stop (restart policy "no")
        victim = r.serving_ids("shop")[0]
        r.runtime.unreachable = False
        await r.runtime.die(victim, 0)
        assert await monitor.check() and r.ctx.engine.reachable
        assert ("start", victim) in r.journal.ops("start")
        assert len(r.routes.table["shop"]) == 2 and r.routes.table["shop"] != routed  # new port
        assert r.ctx.fleet.restarts(victim) == 1
        assert r.current("shop").number == 1  # no redeploy was needed


async def test_no_container_left_redeploys_the_current_image(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}, http=True) as r:
        assert (await r.deploy("shop", "shop:7")).ok
        monitor = EngineMonitor(r.ctx)
        r.runtime.unreachable = True
        await monitor.check()
        r.runtime.unreachable = False
        await r.runtime.vanish(r.serving_ids("shop")[0])  # the engine lost it
        assert await monitor.check()
        current = r.current("shop")
        assert current.number == 2 and current.image == "shop:7"
        assert len(r.routes.table["shop"]) == 1


async def test_a_daemon_started_without_docker_adopts_and_starts_apps_when_it_answers(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "blog": fast_app()}, http=True) as r:
        assert (await r.deploy("shop")).ok
        r2 = r.restarted()
        r.runtime.unreachable = True
        try:
            await r2.sup.adopt()
            raise AssertionError("adopt should fail without Docker")
        except RuntimeFailure as exc:
            r2.ctx.engine.down(str(exc))
        assert r2.sup.serving == {}
        monitor = EngineMonitor(r2.ctx, adopted=False)
        assert not await monitor.check()
        r.runtime.unreachable = False
        assert await monitor.check()
        assert r2.sup.serving["shop"].release == 1  # adopted, not redeployed
        assert r2.sup.serving["blog"].release == 1  # never ran: deployed
        assert r2.ctx.engine.reachable and monitor.adopted


async def test_a_failed_recovery_is_retried(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}, http=True) as r:
        assert (await r.deploy("shop")).ok
        monitor = EngineMonitor(r.ctx)
        r.runtime.unreachable = True
        await monitor.check()
        r.runtime.unreachable = False
        r.runtime.fail("inspect", RuntimeFailure("engine still starting"))
        assert await monitor.check()  # it answers, the recovery fails once
        assert not monitor.recovered.is_set()
        assert await monitor.check()
        assert monitor.recovered.is_set()


async def test_retire_timers_that_failed_during_the_outage_run_again(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(retire_after=0.2)}, http=True) as r:
        assert (await r.deploy("shop")).ok
        old = set(r.serving_ids("shop"))
        monitor = EngineMonitor(r.ctx)
        assert (await r.deploy("shop", "app:v2")).ok
        r.runtime.unreachable = True  # the retire's stop and remove fail: its task ends
        assert not await monitor.check()
        await r.sup.retirer.wait_idle()
        assert {cid for cid, _, _ in r.state.retiring()} == old
        assert old <= set(r.runtime.containers)
        r.runtime.unreachable = False
        assert await monitor.check()
        await r.sup.retirer.wait_idle()
        assert r.state.retiring() == [] and not old & set(r.runtime.containers)


async def test_a_deploy_while_docker_is_unreachable_fails_with_the_reason(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}, http=True) as r:
        assert (await r.deploy("shop")).ok
        routed = r.routes.table["shop"]
        r.runtime.unreachable = True
        report = await r.deploy("shop", "app:v2")
        assert not report.ok and "Connection refused" in report.reason
        assert r.routes.table["shop"] == routed and r.current("shop").number == 1
