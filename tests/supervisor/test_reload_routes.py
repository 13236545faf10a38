"""Issue #18 item 4: a reload that moves a host from one app to another installs the whole new
route table in one step; a real conflict is refused before anything changes; the SIGHUP loop
survives any exception. On the fakes, and on the real in-process proxy."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy import Proxy, Route, RouteConflictError
from proxy.routes import Maintenance
from supervisor.config.loader import load_config
from supervisor.daemon.daemon import Daemon
from supervisor.deploy.reconcile import apply
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import ConfigError
from supervisor.model.spec import Config
from supervisor.store.releases import StateStore
from tests.fakes import Behaviour, FakeRuntime, Journal, fast_app, make_config, rig
from tests.proxy.utils import TEARDOWN_GRACE


def moved(tmp_path: Path) -> Config:
    """shop's host goes to blog, shop gets a new one: in one file."""
    return make_config(tmp_path, {"shop": fast_app(hosts=["new-shop.test"]),
                                  "blog": fast_app(hosts=["blog.test", "shop.test"])})


async def test_a_host_moves_between_apps_in_one_reload(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "blog": fast_app()}) as r:
        assert (await r.deploy("shop")).ok and (await r.deploy("blog")).ok
        shop, blog = r.routes.table["shop"], r.routes.table["blog"]
        r.clear()
        result = await apply(r.ctx, moved(tmp_path))
        assert result["plan"]["rerouted"] == ["blog", "shop"]
        assert r.routes.own.ops() == [("replace_routes", ("blog", "shop"))]  # one step
        assert r.routes.options["blog"]["hosts"] == ("blog.test", "shop.test")
        assert r.routes.options["shop"]["hosts"] == ("new-shop.test",)
        assert (r.routes.table["shop"], r.routes.table["blog"]) == (shop, blog)


async def test_a_changed_app_taking_a_host_is_redeployed_without_conflict(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "blog": fast_app()}) as r:
        assert (await r.deploy("shop")).ok and (await r.deploy("blog")).ok
        new = make_config(tmp_path, {"shop": fast_app(hosts=["new-shop.test"]),
                                     "blog": fast_app(hosts=["shop.test"], env={"V": "2"})})
        result = await apply(r.ctx, new)
        assert result["plan"]["changed"] == ["blog"]
        assert result["deploys"]["blog"]["ok"] is True, result
        assert r.routes.options["blog"]["hosts"] == ("shop.test",)
        assert r.current("blog").number == 2


async def test_a_conflict_is_refused_before_anything_changes(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "blog": fast_app(), "old": fast_app()}) as r:
        for name in ("shop", "blog", "old"):
            assert (await r.deploy(name)).ok
        before = (dict(r.routes.table), dict(r.routes.options))
        good = make_config(tmp_path, {"shop": fast_app(), "blog": fast_app(env={"V": "2"})})
        # What the validator refuses (two apps on one host and prefix), forced past it.
        apps = dict(good.apps)
        apps["blog"] = dataclasses.replace(apps["blog"], hosts=("shop.test",))
        bad = dataclasses.replace(good, apps=MappingProxyType(apps))
        r.clear()
        with pytest.raises(ConfigError, match="conflict"):
            await apply(r.ctx, bad)
        assert (dict(r.routes.table), dict(r.routes.options)) == before
        assert r.journal.ops("run", "kill", "stop", "remove") == []  # "old" was not stopped
        assert sorted(r.sup.serving) == ["blog", "old", "shop"]
        assert r.sup.config.apps["blog"].hosts == ("blog.test",)


def test_the_validator_refuses_one_host_and_prefix_for_two_apps(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.toml"
    path.write_text('[apps.a]\nimage = "x"\nhosts = ["h.test"]\n'
                    '[apps.b]\nimage = "x"\nhosts = ["H.test"]\n'
                    '[apps.c]\nimage = "x"\nhosts = ["h.test"]\npath_prefix = "/api"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "already routed to app 'a'" in str(caught.value)
    assert "apps.c" not in str(caught.value)  # another prefix on the same host is fine


# the real proxy ---------------------------------------------------------------------------


def test_proxy_replace_routes_is_checked_whole() -> None:
    proxy = Proxy()
    proxy.set_app("shop", ["shop.test"], ["127.0.0.1:1"])
    proxy.set_app("blog", ["blog.test"], ["127.0.0.1:2"])
    table = proxy.table
    with pytest.raises(RouteConflictError):  # blog takes shop.test while shop keeps it
        proxy.replace_routes({"blog": Route(("shop.test",), ("127.0.0.1:2",))})
    assert proxy.table is table
    proxy.replace_routes({"blog": Route(("shop.test",), ("127.0.0.1:2",)),
                          "shop": Route(("new.test",), ("127.0.0.1:1",)), "gone": None})
    assert proxy.table.lookup("shop.test", "/").app == "blog"  # type: ignore[union-attr]
    assert proxy.table.lookup("new.test", "/").app == "shop"  # type: ignore[union-attr]
    proxy.replace_routes({"blog": None})
    assert proxy.table.lookup("shop.test", "/") is None


async def test_the_one_step_reload_keeps_maintenance_pages_policy_and_canary(tmp_path: Path) -> None:
    """The whole new table is built from the fleet's full state, not only hosts and targets:
    an app in maintenance, with its own error pages and an edge policy, and an app with a
    canary running keep all of it in the proxy across a reload that moves a host."""
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "503.html").write_text("<p>blog is away</p>")
    blog = fast_app(error_pages=str(pages), allow=["127.0.0.1"])
    config = make_config(tmp_path, {"shop": fast_app(), "blog": blog})
    runtime = FakeRuntime(Journal(), http=True)
    proxy = Proxy()
    state = StateStore(config.server.state_dir)
    sup = Supervisor(config, runtime, proxy, state)
    try:
        assert (await sup.deploy("shop")).ok and (await sup.deploy("blog")).ok
        await sup.set_maintenance("blog", Maintenance("back at noon", 60))
        shop_app = sup.ctx.apps.app("shop")
        serving = sup.ctx.fleet.get("shop")
        assert serving is not None
        sup.ctx.fleet.start_canary(shop_app, serving.release + 1, serving.containers, 10.0)
        result = await sup.reload(make_config(tmp_path, {
            "shop": fast_app(hosts=["new-shop.test"]),
            "blog": {**blog, "hosts": ["blog.test", "shop.test"]}}))
        assert result["plan"]["rerouted"] == ["blog", "shop"]
        moved_to = proxy.table.lookup("shop.test", "/")
        assert moved_to is not None and moved_to.app == "blog"
        assert moved_to.maintenance == Maintenance("back at noon", 60)
        assert moved_to.page(503) == b"<p>blog is away</p>"
        assert moved_to.policy is not None and moved_to.policy == sup.config.apps["blog"].policy
        assert moved_to.steps is not None  # the policy's steps were derived, as set_app does
        shop = proxy.table.lookup("new-shop.test", "/")
        assert shop is not None and shop.rollout is not None
        assert (shop.rollout.release, shop.rollout.canary_release, shop.rollout.percent) == (
            str(serving.release), str(serving.release + 1), 10.0)
        assert set(proxy.release_stats("shop")) == {str(serving.release), str(serving.release + 1)}
    finally:
        await sup.retirer.close()
        state.close()
        await runtime.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_host_moves_under_load_through_the_real_proxy(tmp_path: Path) -> None:
    """Requests for the moving host never get a 404: before the reload shop answers it, after
    it blog does; the other hosts answer throughout."""
    config = make_config(tmp_path, {"shop": fast_app(), "blog": fast_app()})
    journal = Journal()
    runtime = FakeRuntime(journal, http=True)

    async def named(c: Any, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(text=c.labels["dockyard.app"])
    runtime.default = Behaviour(http=named)
    proxy = Proxy()
    state = StateStore(config.server.state_dir)
    sup = Supervisor(config, runtime, proxy, state)
    port = free_port()
    await proxy.start("127.0.0.1", port)
    try:
        assert (await sup.deploy("shop")).ok and (await sup.deploy("blog")).ok
        seen: list[tuple[str, int, str]] = []
        stop = asyncio.Event()

        async def load(host: str) -> None:
            async with aiohttp.ClientSession() as http:
                while not stop.is_set():
                    async with http.get(f"http://127.0.0.1:{port}/", headers={"Host": host}) as resp:
                        seen.append((host, resp.status, await resp.text()))
                    await asyncio.sleep(0.002)

        tasks = [asyncio.ensure_future(load(h)) for h in ("shop.test", "blog.test")]
        await asyncio.sleep(0.2)
        result = await sup.reload(moved(tmp_path))
        assert result["plan"]["rerouted"] == ["blog", "shop"]
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        assert {status for _, status, _ in seen} == {200}, [s for s in seen if s[1] != 200][:3]
        bodies = [body for host, _, body in seen if host == "shop.test"]
        switch = bodies.index("blog")
        assert set(bodies[:switch]) == {"shop"} and set(bodies[switch:]) == {"blog"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/", headers={"Host": "new-shop.test"}) as resp:
                assert (resp.status, await resp.text()) == (200, "shop")
    finally:
        await proxy.stop(TEARDOWN_GRACE)
        await sup.retirer.close()
        state.close()
        await runtime.close()


# the SIGHUP loop ----------------------------------------------------------------------------


async def test_the_reload_signal_loop_survives_any_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(make_config(tmp_path, {}))
    calls: list[str] = []
    failures = [ConfigError([]), RouteConflictError("x"), RuntimeError("boom"), KeyError("k")]

    async def reload() -> dict[str, object]:
        calls.append("reload")
        if failures:
            raise failures.pop(0)
        return {}
    daemon.reload = reload  # type: ignore[method-assign]
    loop = asyncio.ensure_future(daemon._reload_on_signal())
    try:
        with caplog.at_level(logging.ERROR, logger="dockyard.supervisor"):
            for _ in range(5):  # five SIGHUPs: four fail, each logged, the fifth still runs
                daemon.should_reload.set()
                await asyncio.sleep(0.02)
        assert calls == ["reload"] * 5
        assert not loop.done()
        assert sum("reload" in rec.getMessage() for rec in caplog.records) == 4
    finally:
        loop.cancel()




async def test_a_stopped_app_keeps_its_503_routes_across_a_reload(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "blog": fast_app()}) as r:
        assert (await r.deploy("shop")).ok and (await r.deploy("blog")).ok
        await r.sup.stop("blog")
        assert r.routes.table["blog"] == ()
        await apply(r.ctx, make_config(tmp_path, {"shop": fast_app(), "blog": fast_app(
            hosts=["blog.test", "www.blog.test"])}))
        assert r.routes.table["blog"] == ()  # still routed, to nothing: 503
        assert r.routes.options["blog"]["hosts"] == ("blog.test", "www.blog.test")
