"""Rollback (Supervisor.rollback): the previous good release's image and repository files."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.deploy.flow import deploy
from supervisor.model.errors import DeployError
from supervisor.model.release import RepoFiles
from tests.fakes import Behaviour, fast_app, rig


async def test_rollback_skips_failed_releases_and_restarts_of_the_same_image(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop", "app:v1")).ok  # 1
        r.runtime.script("app:v2", Behaviour(exit_code=1))
        assert not (await r.deploy("shop", "app:v2")).ok  # 2 failed
        assert (await r.deploy("shop", "app:v3")).ok  # 3
        assert (await r.sup.restart("shop")).ok  # 4: v3 again
        report = await r.sup.rollback("shop", progress=r.progress)
        assert report.ok, report.reason
        assert report.release == 5 and report.image == "app:v1"
        rel = r.state.current("shop")
        assert rel is not None and (rel.number, rel.kind, rel.image) == (5, "rollback", "app:v1")
        assert {c.image for c in (r.runtime.containers[i].spec for i in r.serving_ids("shop"))} == {"app:v1"}
        # and a second rollback goes back to v3 (release 4 is now the previous good one)
        again = await r.sup.rollback("shop")
        assert again.ok and again.image == "app:v3"


async def test_rollback_brings_back_the_repository_files_of_that_release(tmp_path: Path) -> None:
    a = RepoFiles(procfile="web: serve\nclock: tick\n", source="git:aaa")
    b = RepoFiles(procfile="web: serve\n", source="git:bbb")
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        base = r.ctx.apps.base_app("shop")
        assert (await deploy(r.ctx, base, "shop:aaa", repo=a)).ok
        assert (await deploy(r.ctx, base, "shop:bbb", repo=b)).ok
        assert set(r.sup.config.apps["shop"].processes) == {"web"}
        report = await r.sup.rollback("shop")
        assert report.ok and report.image == "shop:aaa"
        assert r.state.repo_files("shop", report.release) == a
        assert r.ctx.apps.repo("shop") == a
        assert set(r.sup.config.apps["shop"].processes) == {"web", "clock"}
        await r.sup.retirer.wait_idle()
        assert sorted(c.name for c in r.runtime.running(app="shop")) == [
            "fake.shop.clock.1.r3", "fake.shop.web.1.r3"]


async def test_rollback_to_a_release_without_repository_files_drops_them(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        base = r.ctx.apps.base_app("shop")
        assert (await deploy(r.ctx, base, "app:v1", repo=None)).ok
        assert (await deploy(r.ctx, base, "shop:abc", repo=RepoFiles(procfile="web: x\nq: y\n"))).ok
        assert (await r.sup.rollback("shop")).ok
        assert r.ctx.apps.repo("shop") is None
        assert set(r.sup.config.apps["shop"].processes) == {"web"}


async def test_rollback_without_an_earlier_good_release_is_refused(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        with pytest.raises(DeployError, match="no earlier successful release"):
            await r.sup.rollback("shop")
        assert (await r.deploy("shop")).ok
        r.runtime.missing_images.add("app:v2")
        assert not (await r.deploy("shop", "app:v2")).ok
        with pytest.raises(DeployError, match="no earlier successful release"):
            await r.sup.rollback("shop")
        assert [rel.status for rel in r.state.releases("shop")] == ["failed", "active"]
