"""Issue #18 item 12: a deploy commits its release and the retire timers before the swap.

A failing write (disk full) leaves the old release serving and the deploy failed with the
reason; a crash right after the swap never flips back at the next start; a swap the proxy
refuses is undone in SQLite. On the fakes, with a store whose writes can be made to fail."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from supervisor.deploy import flow
from supervisor.store import sqlite
from supervisor.store.releases import StateStore
from tests.fakes import Rig, eventually, fast_app, rig

DISK_FULL = "database or disk is full"


def fill_disk(state: StateStore) -> None:
    """Every write of `state` from now on fails as SQLite does on a full disk."""
    def full() -> AbstractContextManager[sqlite3.Connection]:
        raise sqlite3.OperationalError(DISK_FULL)
    state._tx = full  # type: ignore[method-assign]


def free_disk(state: StateStore) -> None:
    del state._tx  # type: ignore[attr-defined]  # the class's method again


def release_ids(r: Rig, release: int) -> set[str]:
    return {c.id for c in r.runtime.containers.values() if c.labels["dockyard.release"] == str(release)}


async def test_disk_full_at_the_commit_fails_the_deploy_and_the_old_release_serves(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(retire_after=60)}) as r:
        assert (await r.deploy("shop")).ok
        routed = r.routes.table["shop"]
        old = set(r.serving_ids("shop"))
        started = r.journal.first("run", "fake.shop.web.1.r2")

        async def fill_during_checks(*args: Any, **kwargs: Any) -> None:
            fill_disk(r.state)  # after begin_release, before the commit
        r.ctx.fleet.routes.warm = fill_during_checks  # type: ignore[method-assign]
        report = await r.deploy("shop", "app:v2")

        assert not report.ok
        assert report.reason == f"could not record the release, nothing changed: {DISK_FULL}"
        assert started == -1 and r.journal.first("run", "fake.shop.web.1.r2") >= 0  # it started
        assert r.routes.table["shop"] == routed  # the routes never moved
        assert set(r.serving_ids("shop")) == old
        assert release_ids(r, 2) == set()  # the new containers are removed
        assert all(r.runtime.containers[c].status == "running" for c in old)
        assert r.events[-1]["event"] == "failed"

        free_disk(r.state)
        assert r.state.retiring() == []  # no timer for containers that still serve
        assert r.current("shop").number == 1
        r2 = r.restarted()
        await r2.sup.adopt()  # the release the disk-full deploy left pending is failed
        assert r2.sup.serving["shop"].release == 1
        assert set(r2.serving_ids("shop")) == old
        rel = r2.state.release("shop", 2)
        assert rel is not None and rel.status == "failed"


async def test_a_crash_right_after_the_swap_does_not_flip_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(BaseException):
        pass

    def kill_at(point: str) -> None:
        if point == "after-swap":
            raise Killed  # what SIGKILL leaves: nothing after the swap runs

    async with rig(tmp_path, {"shop": fast_app(retire_after=0.2)}) as r:
        assert (await r.deploy("shop")).ok
        old = set(r.serving_ids("shop"))
        monkeypatch.setattr(flow, "kill_point", kill_at)
        with pytest.raises(Killed):
            await r.deploy("shop", "app:v2")
        new = release_ids(r, 2)
        assert r.current("shop").number == 2  # committed before the swap
        assert {cid for cid, _, _ in r.state.retiring()} == old
        await r.sup.retirer.close()

        r2 = r.restarted()
        await r2.sup.adopt()
        assert r2.sup.serving["shop"].release == 2  # no flip-back to release 1
        assert set(r2.serving_ids("shop")) == new
        await eventually(lambda: not (old & set(r.runtime.containers)), timeout=3)
        assert r2.state.retiring() == []
        assert set(r.runtime.containers) == new  # no orphans, nothing of release 1 left


async def test_a_kill_after_the_commit_before_the_swap_serves_the_new_release_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(BaseException):
        pass

    def kill_at(point: str) -> None:
        if point == "after-commit":
            raise Killed

    async with rig(tmp_path, {"shop": fast_app(retire_after=0.1)}) as r:
        assert (await r.deploy("shop")).ok
        old = set(r.serving_ids("shop"))
        monkeypatch.setattr(flow, "kill_point", kill_at)
        with pytest.raises(Killed):
            await r.deploy("shop", "app:v2")
        assert set(r.serving_ids("shop")) == old  # the routes did not move in this process
        new = release_ids(r, 2)
        r2 = r.restarted()
        await r2.sup.adopt()
        assert set(r2.serving_ids("shop")) == new  # checked containers, committed: they serve
        await eventually(lambda: set(r.runtime.containers) == new, timeout=3)


async def test_a_swap_the_proxy_refuses_is_undone(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(retire_after=60)}) as r:
        assert (await r.deploy("shop")).ok
        old = set(r.serving_ids("shop"))

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise ValueError("refused")
        r.routes.set_app = refuse  # type: ignore[method-assign]
        report = await r.deploy("shop", "app:v2")
        assert not report.ok and "refused" in report.reason
        assert r.current("shop").number == 1
        assert r.state.retiring() == []
        rel = r.state.release("shop", 2)
        assert rel is not None and rel.status == "failed"
        assert set(r.serving_ids("shop")) == old and r.sup.serving["shop"].release == 1
        assert release_ids(r, 2) == set()


def test_sqlite_commits_are_fsynced(tmp_path: Path) -> None:
    db = sqlite.connect(tmp_path / "x.db", "CREATE TABLE t (x);")
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


async def test_disk_full_before_the_deploy_begins_is_a_clear_deploy_error(tmp_path: Path) -> None:
    from supervisor.model.errors import DeployError

    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        fill_disk(r.state)
        with pytest.raises(DeployError, match=f"could not record the release, nothing changed: {DISK_FULL}"):
            await r.deploy("shop", "app:v2")
        free_disk(r.state)
        assert r.journal.first("run", "fake.shop.web.1.r2") == -1
        assert r.current("shop").number == 1


async def test_disk_full_after_a_promoted_canary_routes_its_share_back(tmp_path: Path) -> None:
    """The canary's containers are removed when the commit fails: its share of new clients
    must not stay routed to them (the serving release takes all traffic again)."""
    from supervisor.model.spec import CanarySpec

    async with rig(tmp_path, {"shop": fast_app(retire_after=60)}) as r:
        assert (await r.deploy("shop")).ok
        routed = r.routes.table["shop"]
        real_activate = r.state.activate

        def full(*args: Any, **kwargs: Any) -> None:
            raise sqlite3.OperationalError(DISK_FULL)
        r.state.activate = full  # type: ignore[method-assign]
        task = asyncio.ensure_future(r.sup.deploy("shop", "app:v2", r.progress,
                                                  CanarySpec(percent=50, window=600)))
        await eventually(lambda: r.routes.rollouts.get("shop", {}).get("canary_release") == "2")
        r.sup.decide_canary("shop", "promote")
        report = await asyncio.wait_for(task, 5)
        r.state.activate = real_activate  # type: ignore[method-assign]
        assert not report.ok and DISK_FULL in report.reason
        assert r.routes.rollouts["shop"]["canary_release"] == ""
        assert r.routes.table["shop"] == routed and r.sup.serving["shop"].release == 1
        assert release_ids(r, 2) == set()
