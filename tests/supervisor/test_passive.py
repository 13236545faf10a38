"""Passive health (deploy/passive.py): a proxy's report of a refusing target, confirmed by the
supervisor, takes that container out of the route table; unconfirmed or stale reports do not."""

from __future__ import annotations

from pathlib import Path

from supervisor.deploy.fleet import targets_of
from supervisor.deploy.passive import PassiveHealth, refuses
from tests.fakes import fast_app, rig


async def test_a_confirmed_refusal_takes_the_container_out_of_rotation(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}})}, http=True) as r:
        assert (await r.deploy("shop")).ok
        gone, kept = r.sup.serving["shop"].containers
        spec = r.ctx.apps.config.apps["shop"]
        (gone_target,), (kept_target,) = targets_of(spec, [gone]), targets_of(spec, [kept])
        await r.runtime.stop_listening(gone.id)
        passive = PassiveHealth(r.ctx)
        passive.report("shop", gone_target)
        passive.report("shop", gone_target)  # a second worker's report while the first is checked
        await passive.settled()
        assert passive.confirmed == 1
        assert r.ctx.fleet.is_down(gone.id) and not r.ctx.fleet.is_down(kept.id)
        assert r.routes.table["shop"] == (kept_target,)


async def test_a_report_the_supervisor_cannot_confirm_changes_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}})}, http=True) as r:
        assert (await r.deploy("shop")).ok
        before = r.routes.table["shop"]
        passive = PassiveHealth(r.ctx)
        passive.report("shop", before[0])  # it answers: a one-off refusal (a full accept queue)
        passive.report("shop", "127.0.0.1:1")  # not a target of the serving release (a stale table)
        passive.report("nosuch", before[0])
        await passive.settled()
        assert passive.confirmed == 0
        assert r.routes.table["shop"] == before
        assert not any(r.ctx.fleet.is_down(c.id) for c in r.sup.serving["shop"].containers)


async def test_refuses_tells_a_refusal_from_an_answer(unused_tcp_port: int) -> None:
    assert await refuses(f"127.0.0.1:{unused_tcp_port}", 1.0)


async def test_the_watcher_hands_the_proxys_reports_to_passive_health(tmp_path: Path) -> None:
    from supervisor.deploy.watch import Watcher

    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}})}, http=True) as r:
        assert (await r.deploy("shop")).ok
        gone, kept = r.sup.serving["shop"].containers
        spec = r.ctx.apps.config.apps["shop"]
        watcher = Watcher(r.ctx, period=60)
        watcher.start()
        try:
            assert r.routes.target_failed is not None
            await r.runtime.stop_listening(gone.id)
            r.routes.target_failed("shop", targets_of(spec, [gone])[0])
            await watcher.passive.settled()
            assert r.routes.table["shop"] == tuple(targets_of(spec, [kept]))
        finally:
            await watcher.close()
        assert r.routes.target_failed is None
