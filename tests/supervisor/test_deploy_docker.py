"""Deploys on real Docker through the real proxy: zero failed requests, failures keep v1."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.deploy.flow import deploy
from supervisor.model.errors import DeployInProgress
from tests.utils import Load, get, make_config, stack

pytestmark = pytest.mark.docker
HOST = "app.test"


def app_def(image: str, **extra: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "image": image,
        "hosts": [HOST],
        "retire_after": 0,
        "stop_timeout": 2,
        "drain_timeout": 5,
        "processes": {"web": {"scale": 2}},
        "healthchecks": {
            "web": [
                {"type": "startup", "name": "health", "path": "/health", "content": "ok",
                 "attempts": 3, "timeout": 2, "wait": 1}
            ]
        },
    }
    app.update(extra)
    return app


def versions(load: Load) -> set[str]:
    return {body.split()[0] for _, _, status, body in load.results if status == 200}


async def test_deploys_under_load_never_fail_a_request(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with stack(config, docker_client) as s:
        first = await s.sup.deploy("web")
        assert first.ok, first.reason
        assert (await get(s.base + "/", HOST))[1].startswith("v1 ")
        swaps: list[tuple[float, str]] = []
        generation: dict[int, set[str]] = {}  # release -> its container ids
        async with Load(s.base + "/", HOST, rate=250) as load:
            await asyncio.sleep(0.5)
            for version in ("v2", "v3", "v1", "v2", "v3", "v1", "v2", "v3"):

                def on_swap(event: Any, version: str = version) -> None:
                    if event.get("step") == "swap" and event.get("status") == "done":
                        swaps.append((time.monotonic(), version))
                        generation[event["release"]] = {
                            c.id[:12] for c in s.sup.serving["web"].containers
                        }

                report = await s.sup.deploy("web", app_images[version], progress=on_swap)
                assert report.ok, report.reason
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.5)
        await s.sup.retirer.wait_idle()
    assert load.failures == [], load.failures[:5]
    assert len(load.results) > 250 * 2
    assert versions(load) == {"v1", "v2", "v3"}
    # Once a swap is done, no request that starts later reaches an older release. (One that
    # started just before the next swap may already reach the next release: that is fine.)
    assert [v for _, v in swaps] == ["v2", "v3", "v1", "v2", "v3", "v1", "v2", "v3"]
    release_of = {cid: rel for rel, ids in generation.items() for cid in ids}
    releases = sorted(generation)
    for (swapped_at, version), release in zip(swaps, releases, strict=True):
        later = [(start - swapped_at, b) for start, _, _, b in load.results if start > swapped_at]
        assert later, "no requests after the swap"
        stale = [(round(t, 4), b) for t, b in later if release_of.get(b.split()[1], 0) < release]
        assert stale == [], (release, version, stale[:5], len(later))


@pytest.mark.parametrize(
    "case",
    ["content-mismatch", "timeout", "container-exits", "wrong-host-header", "predeploy-fails"],
)
async def test_failed_deploy_keeps_v1_serving(
    case: str, tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], env={"REQUIRE_HOST": HOST})})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        v1_ids = {c.id for c in s.sup.serving["web"].containers}
        base = config.apps["web"]
        check = base.healthchecks["web"][0]
        if case == "content-mismatch":
            bad = dataclasses.replace(check, content="not-there", attempts=1)
        elif case == "timeout":
            bad = dataclasses.replace(check, path="/cgi-bin/slow?ms=3000", timeout=0.5, attempts=1)
        elif case == "container-exits":
            bad = dataclasses.replace(check, path="/nope", attempts=5, wait=1)
        elif case == "wrong-host-header":
            bad = dataclasses.replace(check, path="/cgi-bin/hosted", content="", attempts=1)
        else:
            bad = check
        env = dict(base.env)
        if case == "container-exits":
            env["CRASH_AFTER"] = "0.2"
        if case == "wrong-host-header":
            env["REQUIRE_HOST"] = "other.test"
        spec = dataclasses.replace(
            base,
            healthchecks={"web": (bad,)},
            env=env,
            predeploy="echo predeploy; exit 3" if case == "predeploy-fails" else None,
        )
        async with Load(s.base + "/", HOST, rate=100) as load:
            report = await deploy(s.sup.ctx, spec, app_images["v2"])
        assert not report.ok
        if case == "container-exits":
            assert "exit" in report.reason
        elif case == "predeploy-fails":
            assert "predeploy command exited 3" in report.reason
        else:
            assert "health" in report.reason
        assert {c.id for c in s.sup.serving["web"].containers} == v1_ids
        assert load.failures == []
        assert versions(load) == {"v1"}
        left = docker_client.containers.list(
            all=True, filters={"label": [f"dockyard.instance={config.server.instance}",
                                         f"dockyard.release={report.release}"]}
        )
        assert left == []
        rows = s.sup.release_rows("web")
        assert rows[0]["status"] == "failed" and rows[0]["reason"] == report.reason
        assert rows[1]["status"] == "active"


async def test_host_header_check_passes_with_the_apps_first_host(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    checks = {"web": [{"type": "startup", "path": "/cgi-bin/hosted", "content": "ok", "attempts": 1}]}
    config = make_config(
        tmp_path, {"web": app_def(app_images["v1"], env={"REQUIRE_HOST": HOST}, healthchecks=checks)}
    )
    async with stack(config, docker_client) as s:
        report = await s.sup.deploy("web")
        assert report.ok, report.reason


async def test_host_network_checks_reach_the_assigned_port(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    # On host networking the app listens on the $PORT dockyard assigns, not on `port` (5000):
    # HTTP and `listening` checks must go there (they went to 5000 and failed the deploy).
    checks = {"web": [
        {"type": "startup", "name": "listening", "listening": True, "attempts": 3, "timeout": 2, "wait": 0.2},
        {"type": "startup", "name": "health", "path": "/health", "content": "ok", "attempts": 3, "timeout": 2,
         "wait": 0.2},
    ]}
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], network="host", healthchecks=checks)})
    async with stack(config, docker_client) as s:
        report = await s.sup.deploy("web")
        assert report.ok, report.reason
        targets = s.sup.targets("web")
        assert len(targets) == 2 and all(not t.endswith(":5000") for t in targets)
        assert (await get(s.base + "/", HOST))[1].startswith("v1 ")
        report = await s.sup.deploy("web", app_images["v2"])
        assert report.ok, report.reason
        assert (await get(s.base + "/", HOST))[1].startswith("v2 ")
        await s.sup.retirer.wait_idle()


async def test_slow_request_in_flight_completes_across_swap(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        slow = asyncio.ensure_future(get(s.base + "/cgi-bin/slow?ms=2000", HOST))
        await asyncio.sleep(0.3)
        report = await s.sup.deploy("web", app_images["v2"])
        assert report.ok
        assert (await get(s.base + "/", HOST))[1].startswith("v2 ")
        assert await slow == (200, "slow 2000 v1\n")
        await s.sup.retirer.wait_idle()


async def test_rollback_returns_to_previous_release(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        assert (await s.sup.deploy("web", app_images["v2"])).ok
        async with Load(s.base + "/", HOST, rate=100) as load:
            report = await s.sup.rollback("web")
        assert report.ok
        assert (await get(s.base + "/", HOST))[1].startswith("v1 ")
        assert load.failures == []
        rows = s.sup.release_rows("web")
        assert [r["kind"] for r in rows[:1]] == ["rollback"]
        assert rows[0]["image"] == app_images["v1"]


async def test_two_deploys_racing_are_refused(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"])})
    async with stack(config, docker_client) as s:
        first = asyncio.ensure_future(s.sup.deploy("web"))
        await asyncio.sleep(0.01)
        with pytest.raises(DeployInProgress):
            await s.sup.deploy("web", app_images["v2"])
        assert (await first).ok


async def test_fast_deploy_and_swap_timing(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    """Reports (never asserts) how long a one-check deploy takes end to end."""
    app = app_def(app_images["v1"], processes={"web": {"scale": 1}})
    app["healthchecks"]["web"][0]["initialDelay"] = 0
    config = make_config(tmp_path, {"web": app})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        start = time.monotonic()
        report = await s.sup.deploy("web", app_images["v2"])
        took = time.monotonic() - start
        assert report.ok
        print(f"\none-check busybox deploy took {took:.3f}s: {report.steps}")
