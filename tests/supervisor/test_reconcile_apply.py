"""Reload (deploy/reconcile.py `apply`) on the fakes: each kind of change touches what it must
and nothing else. The pure `plan()` is tested in test_plans.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supervisor.deploy.reconcile import apply
from supervisor.model.spec import Config
from tests.fakes import Behaviour, Rig, fast_app, make_config, rig


def shop(**extra: Any) -> dict[str, Any]:
    return fast_app(**extra)


async def reload(r: Rig, tmp_path: Path, apps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    new: Config = make_config(tmp_path, apps)
    r.clear()
    result = await apply(r.ctx, new)
    await r.sup.retirer.wait_idle()
    return result


async def test_reroute_changes_only_the_routes(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop(), "blog": shop()}) as r:
        assert (await r.deploy("shop")).ok and (await r.deploy("blog")).ok
        table = r.routes.table["shop"]
        result = await reload(r, tmp_path, {"shop": shop(hosts=["new.test"]),
                                            "blog": shop(balance="least_inflight")})
        assert result["plan"]["rerouted"] == ["blog", "shop"]
        assert r.journal.ops("run", "kill", "stop", "remove", "run_oneoff") == []
        # every app's routes in one assignment: the new host replaces the old one at once
        assert r.routes.own.ops() == [("replace_routes", ("blog", "shop"))]
        assert r.routes.table["shop"] == table
        assert r.routes.options["shop"]["hosts"] == ("new.test",)
        assert r.routes.options["blog"]["balance"] == "least_inflight"
        assert r.current("shop").number == 1


async def test_scaled_app_is_scaled_and_others_untouched(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop(), "blog": shop()}) as r:
        assert (await r.deploy("shop")).ok and (await r.deploy("blog")).ok
        result = await reload(r, tmp_path, {"shop": shop(processes={"web": {"scale": 3}}),
                                            "blog": shop()})
        assert result["plan"]["scaled"] == ["shop"] and result["plan"]["unchanged"] == ["blog"]
        assert [op[1] for op in r.journal.ops("run")] == ["fake.shop.web.2.r1", "fake.shop.web.3.r1"]
        assert len(r.routes.table["shop"]) == 3
        assert r.routes.set_apps("blog") == []
        assert r.current("shop").number == 1


async def test_changed_app_is_redeployed_on_its_current_image_unless_the_image_changed(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop(), "blog": shop()}) as r:
        assert (await r.deploy("shop", "shop:pushed")).ok  # deployed with --image
        assert (await r.deploy("blog")).ok
        result = await reload(r, tmp_path, {"shop": shop(env={"MODE": "fast"}),
                                            "blog": shop(image="app:v2")})
        assert result["plan"]["changed"] == ["blog", "shop"]
        assert result["deploys"] == {"shop": {"ok": True, "release": 2, "reason": ""},
                                     "blog": {"ok": True, "release": 2, "reason": ""}}
        assert r.current("shop").image == "shop:pushed"
        assert r.current("blog").image == "app:v2"
        (web,) = r.runtime.running(app="shop")
        assert web.spec.env["MODE"] == "fast"


async def test_one_apps_failure_does_not_stop_the_others(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop()}) as r:
        assert (await r.deploy("shop")).ok
        r.runtime.script("app:v2", Behaviour(exit_code=1))
        result = await reload(r, tmp_path, {"shop": shop(image="app:v2"), "blog": shop(image="blog:v1")})
        assert result["plan"]["added"] == ["blog"] and result["plan"]["changed"] == ["shop"]
        assert result["deploys"]["shop"]["ok"] is False
        assert "exit code 1" in result["deploys"]["shop"]["reason"]
        assert result["deploys"]["blog"]["ok"] is True
        assert r.sup.serving["shop"].release == 1
        assert r.sup.config.apps["shop"].image == "app:v2"  # the definition follows the file


async def test_removed_app_is_stopped_and_unrouted(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop(), "blog": shop()}) as r:
        assert (await r.deploy("shop")).ok and (await r.deploy("blog")).ok
        seen: list[Config] = []
        r.sup.on_config.append(seen.append)
        result = await reload(r, tmp_path, {"shop": shop()})
        assert result["plan"]["removed"] == ["blog"]
        assert "blog" not in r.routes.table and "blog" not in r.sup.serving
        assert r.runtime.running(app="blog") == []
        # unrouted with the new table before its containers drain (no set_app of its own)
        assert r.routes.own.ops("set_app", "remove_app", "replace_routes") == [
            ("replace_routes", ("blog", "shop"))]
        assert not r.state.is_stopped("blog")
        assert [sorted(c.apps) for c in seen] == [["shop"]]


async def test_an_app_removed_then_added_back_is_deployed_again(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop(), "blog": shop()}) as r:
        assert (await r.deploy("blog")).ok
        await reload(r, tmp_path, {"shop": shop()})
        result = await reload(r, tmp_path, {"shop": shop(), "blog": shop()})
        assert result["plan"]["added"] == ["blog"]
        assert result["deploys"]["blog"]["ok"] is True
        assert len(r.routes.table["blog"]) == 1


async def test_a_stopped_app_that_changed_waits_for_start(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": shop()}) as r:
        assert (await r.deploy("shop")).ok
        await r.sup.stop("shop")
        result = await reload(r, tmp_path, {"shop": shop(env={"A": "1"})})
        assert result["plan"]["changed"] == ["shop"] and result["deploys"] == {}
        assert r.journal.ops("run") == []
        assert (await r.sup.start("shop")).ok
        (web,) = r.runtime.running(app="shop")
        assert web.spec.env["A"] == "1"
