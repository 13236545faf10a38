"""Issue #18 item 13: retention. Releases older than keep_releases go with their repository
files and images (never the serving or rollback release's, never an image something still
uses); cron runs are kept per task; per-container state goes at retire."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.runs import RunStore
from supervisor.config.loader import load_config
from supervisor.deploy.watch import Watcher
from supervisor.model import defaults
from supervisor.model.errors import ConfigError
from supervisor.model.release import RepoFiles
from tests.fakes import fast_app, rig


async def test_old_releases_files_and_images_are_pruned(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(keep_releases=2)}) as r:
        for n in range(1, 6):
            assert (await r.deploy("shop", f"shop:{n}")).ok
            r.state.set_repo_files("shop", n, RepoFiles("web: x", None, "git"))
            await r.sup.retirer.wait_idle()
        assert [rel.number for rel in r.state.releases("shop")] == [5, 4]
        assert r.state.repo_files("shop", 3) is None and r.state.repo_files("shop", 4) is not None
        removed = [op[1] for op in r.journal.ops("remove_image") if op[2]]
        assert removed == ["shop:1", "shop:2", "shop:3"]
        assert (await r.deploy("shop", "shop:6")).ok
        assert [rel.number for rel in r.state.releases("shop")] == [6, 5]


async def test_the_rollback_target_and_shared_or_configured_images_stay(tmp_path: Path) -> None:
    apps = {"shop": fast_app(keep_releases=1), "blog": fast_app(image="shared:1")}
    async with rig(tmp_path, apps) as r:
        assert (await r.deploy("blog")).ok  # blog serves shared:1
        assert (await r.deploy("shop", "shop:1")).ok
        assert (await r.deploy("shop", "shared:1")).ok  # the same image as blog's
        assert (await r.deploy("shop", "shop:1")).ok  # a rollback-like redeploy
        assert (await r.deploy("shop", "app:v1")).ok  # app:v1: shop's image in the config
        assert (await r.deploy("shop", "shop:5")).ok
        await r.sup.retirer.wait_idle()
        numbers = [rel.number for rel in r.state.releases("shop")]
        prev = r.state.previous_good("shop")
        assert prev is not None and prev.number in numbers and numbers[0] == 5
        attempts = [op[1] for op in r.journal.ops("remove_image")]
        assert "shared:1" not in attempts  # named by blog's kept release
        assert "app:v1" not in attempts  # named by the config
        assert r.state.current("blog") is not None


async def test_an_image_a_container_uses_is_kept(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(keep_releases=1, retire_after=60)}) as r:
        assert (await r.deploy("shop", "shop:1")).ok
        assert (await r.deploy("shop", "shop:2")).ok
        assert (await r.deploy("shop", "shop:3")).ok  # shop:1's containers are still retiring?
        await r.sup.retirer.close()  # no: they got retire_after=60: still there
        assert ("remove_image", "shop:1", False) in r.journal.ops("remove_image")


async def test_a_prune_failure_never_fails_the_deploy(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(keep_releases=1)}) as r:
        r.runtime.fail("remove_image", RuntimeError("engine hiccup"), times=None)
        for n in range(1, 5):
            assert (await r.deploy("shop", f"shop:{n}")).ok
            await r.sup.retirer.wait_idle()
        assert len(r.state.releases("shop")) == 2


def test_keep_defaults_and_bounds(tmp_path: Path) -> None:
    path = tmp_path / "dockyard.toml"
    path.write_text('[apps.a]\nimage = "x"\n')
    config = load_config(path)
    assert config.server.keep_releases == defaults.KEEP_RELEASES == 5
    assert config.server.keep_cron_runs == defaults.KEEP_CRON_RUNS == 100
    assert config.apps["a"].keep_releases is None
    path.write_text('[server]\nkeep_releases = 3\nkeep_cron_runs = 10\n'
                    '[apps.a]\nimage = "x"\nkeep_releases = 7\n')
    config = load_config(path)
    assert (config.server.keep_releases, config.server.keep_cron_runs) == (3, 10)
    assert config.apps["a"].keep_releases == 7
    path.write_text('[server]\nkeep_releases = 0\n[apps.a]\nimage = "x"\nkeep_releases = 100000\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "server.keep_releases" in str(caught.value) and "apps.a.keep_releases" in str(caught.value)


def test_cron_runs_are_kept_per_task(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "cron.db", keep=3)
    running = store.claim("shop", "report", None)
    assert running is not None
    for _ in range(6):
        for task in ("backup", "report"):
            run = store.claim("shop", task, None)
            assert run is not None
            store.finish(run, "ok", 0, "x" * 1000)
    assert len(store.runs("shop", "backup", limit=100)) == 3
    report = store.runs("shop", "report", limit=100)
    assert len(report) == 4 and report[-1].id == running  # a run still going is never pruned
    store.close()


async def test_retired_containers_leave_no_per_container_state(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        old = r.serving_ids("shop")
        fleet = r.ctx.fleet
        watcher = Watcher(r.ctx, period=3600)
        for cid in old:
            fleet.record_restart(cid)
            fleet.record_exit(cid, 1)
            watcher._failures[(cid, "ready")] = 1  # a readiness failure streak
        assert (await r.deploy("shop", "app:v2")).ok
        await r.sup.retirer.wait_idle()
        assert all(fleet.restarts(c) == 0 and fleet.last_exit(c) is None for c in old)
        await watcher.probe_all()
        assert watcher._failures == {}
