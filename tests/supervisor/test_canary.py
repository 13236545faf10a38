"""Canary deploys (deploy/canary.py) on the fakes: the rules, promote, roll back by each rule,
decisions by hand, the lock, a cancelled deploy and a daemon restarted mid-canary."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from proxy.stats import LATENCY_BUCKETS
from supervisor.deploy.canary import Figures, figures, judge, percentile
from supervisor.model.errors import DeployError, DeployInProgress
from supervisor.model.spec import CanarySpec
from tests.fakes import Rig, eventually, fast_app, rig

BOUNDS = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
SPEC = CanarySpec(percent=20, window=0.6, max_error_rate=0.02, max_latency_ratio=1.5, min_requests=20)


def feed(r: Rig, app: str, release: str, requests: int, errors: int = 0, latency: float = 0.001) -> None:
    """Add `requests` answered in `latency` seconds, `errors` of them 5xx, to the fake proxy's
    counters of `release` (what Proxy.release_stats would show)."""
    s = r.routes.stats.setdefault(app, {}).setdefault(release, {
        "requests": 0, "status": {"2xx": 0, "5xx": 0}, "failures": 0,
        "latency_buckets": dict.fromkeys(BOUNDS, 0), "latency_sum": 0.0})
    s["requests"] += requests
    s["status"]["5xx"] += errors
    s["status"]["2xx"] += requests - errors
    bound = next((b for b in BOUNDS[:-1] if latency <= float(b)), "+Inf")
    s["latency_buckets"][bound] += requests


async def canary_routed(r: Rig, app: str = "shop") -> None:
    await eventually(lambda: r.routes.rollouts.get(app, {}).get("canary_release"))


async def deploy_with_canary(r: Rig, spec: CanarySpec = SPEC) -> asyncio.Task[Any]:
    return asyncio.ensure_future(r.sup.deploy("shop", "app:v2", r.progress, spec))


# the rules ---------------------------------------------------------------------------------


def test_percentile_interpolates_inside_the_bucket() -> None:
    counts = [("0.001", 50), ("0.005", 50), ("+Inf", 0)]
    assert percentile(counts, 0.5) == pytest.approx(0.001)
    assert percentile(counts, 0.99) == pytest.approx(0.001 + 0.004 * 49 / 50)
    assert percentile([("0.1", 0), ("+Inf", 0)], 0.99) is None
    assert percentile([("0.1", 0), ("+Inf", 3)], 0.99) == pytest.approx(0.1)


def test_figures_are_the_traffic_since_the_canary_began() -> None:
    base = {"requests": 10, "status": {"5xx": 1}, "failures": 1, "latency_buckets": {"0.001": 10, "+Inf": 0}}
    now = {"requests": 30, "status": {"5xx": 3}, "failures": 2, "latency_buckets": {"0.001": 20, "+Inf": 10}}
    f = figures(now, base)
    assert (f.requests, f.errors, f.failures) == (20, 2, 1)
    assert f.error_rate == pytest.approx(0.15)
    assert figures(None, base) == Figures()


@pytest.mark.parametrize(("old", "new", "final", "verdict"), [
    (Figures(1000, 0), Figures(100, 0), False, "wait"),
    (Figures(1000, 0), Figures(100, 0), True, "promote"),
    (Figures(1000, 0), Figures(100, 30), False, "rollback"),  # 30% against 0%
    (Figures(1000, 100), Figures(100, 11), False, "wait"),  # 11% against 10%: within 2 points
    (Figures(1000, 0), Figures(10, 10), False, "wait"),  # too few requests to judge yet
    (Figures(1000, 0), Figures(10, 10), True, "promote"),  # ... and at the end: nothing against it
    (Figures(1000, 0, p99=0.002), Figures(100, 0, p99=0.2), False, "rollback"),  # 100x slower
    (Figures(1000, 0, p99=0.002), Figures(100, 0, p99=0.009), True, "promote"),  # 4.5x but +7 ms only
    (Figures(1000, 0, p99=0.1), Figures(100, 0, p99=0.14), True, "promote"),  # 1.4x
    (Figures(10, 0, p99=0.002), Figures(100, 0, p99=0.2), False, "wait"),  # too few on the old one
])
def test_judge(old: Figures, new: Figures, final: bool, verdict: str) -> None:
    assert judge(old, new, SPEC, final=final)[0] == verdict


# the flow ----------------------------------------------------------------------------------


async def test_healthy_canary_is_promoted_after_its_window(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        old_ids = r.serving_ids("shop")
        task = await deploy_with_canary(r)
        await canary_routed(r)
        route = r.routes.rollouts["shop"]
        assert route["release"] == "1" and route["canary_release"] == "2" and route["canary_percent"] == 20
        assert len(route["canary_targets"]) == 1 and route["canary_targets"][0] not in r.routes.table["shop"]
        with pytest.raises(DeployInProgress):  # the canary holds the app's lock
            r.sup.refuse_if_busy("shop")
        feed(r, "shop", "1", 400)
        feed(r, "shop", "2", 100)
        report = await task
        assert report.ok, report.reason
        assert r.current("shop").number == 2
        assert r.routes.rollouts["shop"] == {"release": "2", "canary_release": "", "canary_targets": (),
                                             "canary_percent": 0.0}
        await r.sup.retirer.wait_idle()
        assert not any(cid in r.runtime.containers for cid in old_ids)
        statuses = [e["status"] for e in r.events if e["event"] == "canary"]
        assert statuses[0] == "start" and "compare" in statuses and statuses[-1] == "promote"
        (record,) = r.state.canaries("shop")
        assert record["state"] == "promoted" and record["figures"]["canary"]["requests"] == 100
        rows = r.sup.release_rows("shop")
        assert rows[0]["canary"]["state"] == "promoted"
        r.sup.refuse_if_busy("shop")  # the lock is free again


async def test_canary_with_5xx_is_rolled_back_by_itself(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        old_ids = r.serving_ids("shop")
        task = await deploy_with_canary(r, CanarySpec(percent=20, window=30, min_requests=20))
        await canary_routed(r)
        canary_ids = [c.id for c in r.runtime.running(release="2")]
        feed(r, "shop", "1", 400)
        feed(r, "shop", "2", 100, errors=30)
        report = await asyncio.wait_for(task, 5)  # long before the window's end
        assert not report.ok and "error rate 30.0%" in report.reason
        assert r.current("shop").number == 1 and r.serving_ids("shop") == old_ids
        assert r.routes.rollouts["shop"]["canary_release"] == "" and r.routes.rollouts["shop"]["release"] == "1"
        failed = r.state.release("shop", 2)
        assert failed is not None and failed.status == "failed" and "100 requests" in failed.reason
        drain = r.journal.first("drain")
        assert 0 <= drain < r.journal.first("stop", canary_ids[0])  # drained, then stopped
        await r.sup.retirer.wait_idle()
        assert not any(cid in r.runtime.containers for cid in canary_ids)
        assert [e for e in r.events if e["event"] == "failed"]
        assert r.state.canaries("shop")[0]["state"] == "rolled_back"


async def test_slow_canary_is_rolled_back_by_the_latency_rule(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        task = await deploy_with_canary(r, CanarySpec(percent=20, window=30, min_requests=20))
        await canary_routed(r)
        feed(r, "shop", "1", 400, latency=0.002)
        feed(r, "shop", "2", 100, latency=0.21)
        report = await asyncio.wait_for(task, 5)
        assert not report.ok and "p99" in report.reason, report.reason
        assert r.current("shop").number == 1


async def test_a_canary_can_be_aborted_or_promoted_by_hand(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        with pytest.raises(DeployError):
            r.sup.decide_canary("shop", "abort")
        task = await deploy_with_canary(r, CanarySpec(percent=50, window=600))
        await canary_routed(r)
        await eventually(lambda: r.sup.route_rows()[0]["canary"] is not None)
        assert r.sup.decide_canary("shop", "abort") == 2
        report = await asyncio.wait_for(task, 5)
        assert not report.ok and "aborted by hand" in report.reason
        assert r.current("shop").number == 1

        task = await deploy_with_canary(r, CanarySpec(percent=50, window=600))
        await canary_routed(r)
        await eventually(lambda: r.sup.route_rows()[0]["canary"] is not None)
        r.sup.decide_canary("shop", "promote")
        report = await asyncio.wait_for(task, 5)
        assert report.ok and r.current("shop").number == 3


async def test_a_dead_canary_container_is_not_promoted(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        task = await deploy_with_canary(r)
        await canary_routed(r)
        (canary,) = r.runtime.running(release="2")
        await r.runtime.die(canary.id, 1)
        report = await task
        assert not report.ok and "not running" in report.reason


async def test_first_deploy_with_canary_just_deploys(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        report = await r.sup.deploy("shop", None, r.progress, SPEC)
        assert report.ok
        assert [e["status"] for e in r.events if e["event"] == "canary"] == ["skipped"]


async def test_the_toml_default_applies_and_can_be_turned_off(tmp_path: Path) -> None:
    canary = {"percent": 30, "for": 0.3, "min_requests": 5}
    async with rig(tmp_path, {"shop": fast_app(canary=canary)}) as r:
        assert r.sup.app("shop").canary == CanarySpec(percent=30, window=0.3, min_requests=5)
        assert (await r.deploy("shop")).ok
        assert (await r.deploy("shop", "app:v2")).ok  # the app's canary: watched, then promoted
        assert any(e.get("status") == "promote" for e in r.events)
        r.clear()
        assert (await r.sup.deploy("shop", "app:v3", r.progress, False)).ok
        assert not [e for e in r.events if e["event"] == "canary"]


async def test_a_cancelled_deploy_rolls_its_canary_back(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        task = await deploy_with_canary(r, CanarySpec(percent=50, window=600))
        await canary_routed(r)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert r.routes.rollouts["shop"]["canary_release"] == ""
        release = r.state.release("shop", 2)
        assert release is not None and release.status == "failed"


async def test_a_daemon_restarted_mid_canary_rolls_it_back(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        old_ids = r.serving_ids("shop")
        task = await deploy_with_canary(r, CanarySpec(percent=50, window=600))
        await canary_routed(r)
        canary_ids = [c.id for c in r.runtime.running(release="2")]
        # The daemon dies (kill -9): nothing of it runs any more; a new one starts on the same state.
        again = r.restarted()
        await again.sup.adopt()
        release = again.state.release("shop", 2)
        assert release is not None and release.status == "failed" and "daemon stopped" in release.reason
        assert again.state.canaries("shop")[0]["state"] == "rolled_back"
        assert again.serving_ids("shop") == old_ids
        assert again.routes.rollouts["shop"] == {"release": "1", "canary_release": "", "canary_targets": (),
                                                 "canary_percent": 0.0}
        assert not any(cid in r.runtime.containers for cid in canary_ids)  # orphans, removed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_prometheus_metrics_carry_the_release() -> None:
    from supervisor.ops import metrics

    class Source:
        def stats_all(self) -> dict[str, Any]:
            return {}

        def release_stats_all(self) -> dict[str, Any]:
            stats = {"requests": 3, "status": {"2xx": 2, "5xx": 1}, "failures": 1,
                     "latency_buckets": {"0.001": 3, "+Inf": 0}, "latency_sum": 0.002}
            return {"shop": {"7": stats}}

    text = metrics.render(proxy=Source()).decode()
    assert 'dockyard_release_http_requests_total{app="shop",code="5xx",release="7"} 1.0' in text
    assert 'dockyard_release_upstream_failures_total{app="shop",release="7"} 1.0' in text
    assert 'dockyard_release_http_request_duration_seconds_count{app="shop",release="7"} 3.0' in text


async def test_control_api_deploys_a_canary_and_aborts_it(tmp_path: Path) -> None:
    import orjson
    from aiohttp.test_utils import TestClient, TestServer

    from supervisor.api.control import make_app

    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        async with TestClient(TestServer(make_app(r.sup))) as client:
            bad = await client.post("/v1/apps/shop/deploy", json={"image": "app:v2", "canary": {"percent": 150}})
            assert bad.status == 400 and "percent" in await bad.text()
            none = await client.post("/v1/apps/shop/canary/abort")
            assert none.status == 400
            body = {"image": "app:v2", "canary": {"percent": 25, "for": 600}}
            stream = asyncio.ensure_future(client.post("/v1/apps/shop/deploy", json=body))
            await canary_routed(r)
            assert r.routes.rollouts["shop"]["canary_percent"] == 25
            await eventually(lambda: r.sup.route_rows()[0]["canary"] is not None)
            status = await (await client.get("/v1/status")).json()
            assert status["apps"][0]["canary"]["percent"] == 25
            busy = await client.post("/v1/apps/shop/deploy", json={"image": "app:v3"})
            assert busy.status == 409
            answer = await client.post("/v1/apps/shop/canary/abort")
            assert await answer.json() == {"app": "shop", "release": 2, "decision": "abort"}
            response = await stream
            lines = [orjson.loads(x) for x in (await response.read()).splitlines()]
            assert lines[-1]["event"] == "result" and not lines[-1]["ok"]
            assert any(e.get("status") == "rollback" for e in lines)
            releases = await (await client.get("/v1/apps/shop/releases")).json()
            assert releases[0]["canary"]["state"] == "rolled_back"
