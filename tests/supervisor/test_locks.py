"""One operation at a time per app (deploy/locks.py): a second one is refused at once with
DeployInProgress, whatever the two are, and `busy()` shows what runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor.deploy.locks import OperationLocks
from supervisor.model.errors import DeployInProgress
from tests.fakes import Rig, fast_app, rig

MESSAGE = "app 'shop' is busy: a deploy is running; try again when it ends"

SECOND: dict[str, Callable[[Rig], Awaitable[Any]]] = {
    "deploy": lambda r: r.sup.deploy("shop", "app:v3"),
    "scale": lambda r: r.sup.scale("shop", {"web": 3}),
    "stop": lambda r: r.sup.stop("shop"),
    "start": lambda r: r.sup.start("shop"),
    "restart": lambda r: r.sup.restart("shop"),
    "rollback": lambda r: r.sup.rollback("shop"),
}


@pytest.mark.parametrize("second", list(SECOND))
async def test_a_second_operation_during_a_deploy_is_refused(second: str, tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app(), "other": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        assert (await r.deploy("shop", "app:v2")).ok  # something to roll back to
        gate = r.runtime.gate("inspect", match="shop.web.1.r3")
        running = asyncio.create_task(r.deploy("shop", "app:v9"))
        await gate.entered.wait()
        assert r.sup.busy() == {"shop": "deploy"}
        r.clear()

        with pytest.raises(DeployInProgress) as refused:
            await SECOND[second](r)
        assert str(refused.value) == MESSAGE
        assert r.journal.ops("run", "set_app", "kill", "stop") == []  # it did nothing at all
        assert not r.state.is_stopped("shop")
        assert (await r.deploy("other")).ok  # another app is not held up

        gate.open()
        assert (await running).ok
        assert r.sup.busy() == {}
        assert [rel.status for rel in r.state.releases("shop")] == ["active", "superseded", "superseded"]


async def test_a_build_claim_holds_the_app_until_released(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        claim = r.ctx.locks.claim("shop", "build")  # what the git-push route does before building
        assert r.sup.busy() == {"shop": "build"}
        for op in (lambda: r.sup.stop("shop"), lambda: r.sup.deploy("shop"),
                   lambda: r.sup.scale("shop", {"web": 2})):
            with pytest.raises(DeployInProgress, match="a build is running"):
                await op()
        with pytest.raises(DeployInProgress):
            r.sup.refuse_if_busy("shop")
        claim.release()
        assert r.sup.busy() == {}
        assert await r.sup.stop("shop") == 1


async def test_busy_shows_scale_and_the_lock_is_released_when_the_operation_fails(tmp_path: Path) -> None:
    async with rig(tmp_path, {"shop": fast_app()}) as r:
        assert (await r.deploy("shop")).ok
        gate = r.runtime.gate("inspect", match="web.2")
        scaling = asyncio.create_task(r.sup.scale("shop", {"web": 2}))
        await gate.entered.wait()
        assert r.sup.busy() == {"shop": "scale"}
        gate.open()
        await scaling
        r.runtime.missing_images.add("app:v2")
        assert not (await r.deploy("shop", "app:v2")).ok
        assert r.sup.busy() == {}


def test_claims_are_per_app_and_released_claims_free_the_app() -> None:
    locks = OperationLocks()
    a = locks.claim("a", "deploy")
    locks.claim("b", "scale")
    assert locks.busy() == {"a": "deploy", "b": "scale"}
    with pytest.raises(DeployInProgress, match="a deploy is running"):
        locks.claim("a", "stop")
    a.release()
    with locks.hold("a", "stop"):
        assert locks.busy()["a"] == "stop"
    assert locks.busy() == {"b": "scale"}
    with pytest.raises(RuntimeError), locks.hold("a", "restart"):
        raise RuntimeError("boom")
    assert "a" not in locks.busy()

