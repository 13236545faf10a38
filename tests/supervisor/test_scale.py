"""Scale, stop, start and restart on the serving release (deploy/scale.py), on the fakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from supervisor.model.errors import DeployError, RuntimeFailure
from tests.fakes import Behaviour, FakeContainer, Gate, Rig, fast_app, rig

CHECKED = {"web": [{"name": "up", "path": "/up", "attempts": 1, "timeout": 0.5}]}


def web_names(r: Rig) -> list[str]:
    serving = r.sup.serving["shop"]
    return sorted(c.name for c in serving.containers if c.process == "web")


async def test_scale_up_checks_the_new_containers_before_they_join_the_routes(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(healthchecks=CHECKED)}) as r:
        routed_during_checks: list[int] = []

        async def up(c: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
            routed_during_checks.append(len(r.routes.table.get("shop", ())))
            return web.Response(text="ok")

        r.runtime.default = Behaviour(http=up)
        assert (await r.deploy("shop")).ok
        routed_during_checks.clear()
        r.clear()

        assert await r.sup.scale("shop", {"web": 3}) == {"web": 3}
        assert routed_during_checks == [1, 1]  # both new ones checked while one target served
        assert [op[0] for op in r.journal.ops("run", "set_app")] == ["run", "run", "set_app"]
        assert len(r.routes.set_apps("shop")[0]) == 3  # one assignment with all three
        assert web_names(r) == ["fake.shop.web.1.r1", "fake.shop.web.2.r1", "fake.shop.web.3.r1"]
        assert r.state.scale("shop") == {"web": 3}
        assert r.journal.ops("drain", "kill", "stop", "remove") == []


async def test_scale_down_takes_containers_out_first_then_retires_them_at_once(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(retire_after=60, processes={"web": {"scale": 3}})}) as r:
        assert (await r.deploy("shop")).ok
        assert len(r.routes.table["shop"]) == 3
        by_name = {c.name: c for c in r.sup.serving["shop"].containers}
        gone = [by_name["fake.shop.web.2.r1"], by_name["fake.shop.web.3.r1"]]
        gone_targets = {f"127.0.0.1:{c.ports[5000]}" for c in gone}
        r.clear()

        assert await r.sup.scale("shop", {"web": 1}) == {"web": 1}
        assert web_names(r) == ["fake.shop.web.1.r1"]
        assert len(r.routes.table["shop"]) == 1 and not set(r.routes.table["shop"]) & gone_targets
        await r.sup.retirer.wait_idle()  # retire_after 0 for a scale down, not the app's 60 s
        ops = r.journal.ops("set_app", "drain", "kill", "stop", "remove")
        assert ops[0][0] == "set_app" and ops[1][0] == "drain" and set(ops[1][1]) == gone_targets
        for c in gone:
            assert r.journal.first("kill", c.id, "SIGTERM") < r.journal.first("stop", c.id)
            assert c.id not in r.runtime.containers
        assert r.state.scale("shop") == {"web": 1}


async def test_a_failing_check_discards_the_started_containers_and_changes_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        table = r.routes.table["shop"]
        r.runtime.script("web.3.r1", Behaviour(exit_code=1))
        r.clear()
        with pytest.raises(DeployError, match=r"scale of 'shop' failed; nothing changed: check 'default'"):
            await r.sup.scale("shop", {"web": 3})
        assert r.journal.ops("set_app") == []
        assert r.routes.table["shop"] == table
        assert web_names(r) == ["fake.shop.web.1.r1"]
        assert [c.name for c in r.runtime.containers.values()] == ["fake.shop.web.1.r1"]
        assert r.state.scale("shop") == {}
        assert r.sup.busy() == {}


async def test_a_failing_start_discards_the_containers_started_before_it(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        r.runtime.fail("run", RuntimeFailure("no space left on device"), match="web.3")
        with pytest.raises(DeployError, match="no space left on device"):
            await r.sup.scale("shop", {"web": 3})
        assert [c.name for c in r.runtime.containers.values()] == ["fake.shop.web.1.r1"]
        assert r.state.scale("shop") == {}


async def test_scale_back_up_while_the_scaled_down_containers_still_retire(tmp_path: Path) -> None:
    """`scale web=1` then `scale web=2` within the drain: the new web.2 must not collide with
    the old web.2, which still exists until its retire ends (Docker names are unique)."""
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {"scale": 2}})}) as r:
        assert (await r.deploy("shop")).ok
        gate = r.routes.drain_gate = Gate()
        await r.sup.scale("shop", {"web": 1})
        await gate.entered.wait()  # the old web.2 drains
        assert await r.sup.scale("shop", {"web": 2}) == {"web": 2}
        assert len(r.routes.table["shop"]) == 2
        gate.open()
        await r.sup.retirer.wait_idle()
        assert len(r.runtime.running(app="shop")) == 2


async def test_scale_checks_names_and_applies_at_the_next_deploy_when_not_serving(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(processes={"web": {}, "worker": {"command": "w"}})}) as r:
        with pytest.raises(DeployError, match="has no process type clock"):
            await r.sup.scale("shop", {"clock": 1})
        assert await r.sup.scale("shop", {"web": 2, "worker": 0}) == {"web": 2, "worker": 0}
        assert r.runtime.containers == {}
        assert (await r.deploy("shop")).ok
        assert sorted(c.name for c in r.runtime.running()) == ["fake.shop.web.1.r1", "fake.shop.web.2.r1"]
        # a worker scaled up joins without touching the web targets
        table = r.routes.table["shop"]
        assert await r.sup.scale("shop", {"worker": 1}) == {"web": 2, "worker": 1}
        assert r.routes.table["shop"] == table
        assert "fake.shop.worker.1.r1" in {c.name for c in r.runtime.running()}


async def test_stop_then_start(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(retire_after=60, processes={"web": {"scale": 2}})}) as r:
        assert (await r.deploy("shop")).ok
        old = set(r.routes.table["shop"])
        r.clear()
        assert await r.sup.stop("shop") == 2
        assert r.routes.table["shop"] == ()  # routed to nothing: the proxy answers 503
        assert r.sup.serving == {} and r.state.is_stopped("shop")
        await r.sup.retirer.wait_idle()  # retire_after 0 on stop
        assert r.journal.ops("set_app")[0] == ("set_app", "shop", ())
        drain = r.journal.ops("drain")
        assert len(drain) == 1 and set(drain[0][1]) == old
        assert r.runtime.containers == {}
        assert await r.sup.stop("shop") == 0

        report = await r.sup.start("shop", progress=r.progress)
        assert report.ok and report.release == 2
        rel = r.state.current("shop")
        assert rel is not None and (rel.kind, rel.image) == ("start", "app:v1")
        assert not r.state.is_stopped("shop")
        assert len(r.routes.table["shop"]) == 2


async def test_restart_is_a_new_release_of_the_same_image(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        with pytest.raises(DeployError, match="no serving release to restart"):
            await r.sup.restart("shop")
        assert (await r.deploy("shop", "app:v7")).ok
        report = await r.sup.restart("shop")
        assert report.ok and (report.release, report.image) == (2, "app:v7")
        rel = r.state.current("shop")
        assert rel is not None and rel.kind == "restart"
