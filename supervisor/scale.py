"""Scale, stop and start on the serving release, without downtime.

Scaling up starts containers of the current release and adds web ones to the routes only after
their checks pass; scaling down takes containers out of the routes first, then drains and stops
them. The new counts persist in SQLite, over the config's scale, across daemon restarts.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import defaults
from .containers import process_spec, scales
from .core import Serving
from .deploy import DeployReport, Progress, deploy
from .errors import DeployError, DeployInProgress
from .runtime import ContainerInfo
from .watch import check_host

if TYPE_CHECKING:
    from .core import Supervisor

_INDEX = re.compile(r"\.(\d+)\.r\d+$")


def index_of(info: ContainerInfo) -> int:
    match = _INDEX.search(info.name)
    return int(match.group(1)) if match else 0


def parse_counts(words: list[str]) -> dict[str, int]:
    """`web=3 worker=2` -> {"web": 3, "worker": 2}; ValueError names the bad word."""
    counts: dict[str, int] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name or not value.isdigit():
            raise ValueError(f"expected PROCESS=COUNT (e.g. web=3), got {word!r}")
        counts[name] = int(value)
    return counts


async def scale(sup: Supervisor, name: str, counts: Mapping[str, int]) -> dict[str, int]:
    """Bring the serving release of `name` to `counts`; return the resulting scale."""
    app = sup.app(name)
    unknown = sorted(set(counts) - set(app.processes))
    if unknown:
        raise DeployError(
            f"app {name!r} has no process type {', '.join(unknown)} "
            f"(it has {', '.join(app.processes)})"
        )
    too_many = {p: n for p, n in counts.items() if not 0 <= n <= defaults.MAX_SCALE}
    if too_many:
        process, count = next(iter(too_many.items()))
        raise DeployError(f"scale of {name!r}: {process}={count} is outside 0-{defaults.MAX_SCALE}; nothing changed")
    lock = sup.lock(name)
    if lock.locked():
        raise DeployInProgress(f"a deploy of {name!r} is running; scale it when it ends")
    async with lock:
        serving = sup.serving.get(name)
        current = sup.state.current(name)
        if serving is None or current is None:
            sup.state.set_scale(name, counts)
            return scales(app, sup.state.scale(name))  # applies at the next deploy
        added: list[ContainerInfo] = []
        removed: list[ContainerInfo] = []
        try:
            for process, wanted in counts.items():
                mine = sorted((c for c in serving.containers if c.process == process), key=index_of)
                if wanted < len(mine):
                    removed.extend(mine[wanted:])
                taken = {index_of(c) for c in mine}
                free = (i for i in itertools.count(1) if i not in taken)
                for _ in range(wanted - len(mine)):
                    spec = process_spec(
                        app, image=current.image, instance=sup.instance, release=current.number,
                        process=process, index=next(free),
                    )
                    added.append(await sup.runtime.run(spec))
        except BaseException:  # a failed start (or a cancel): the ones already started go
            await asyncio.gather(*(sup.runtime.remove(c.id) for c in added), return_exceptions=True)
            raise
        if added:
            await _check_or_discard(sup, name, added)
        # Only now, with the new containers past their checks, do the counts persist.
        sup.state.set_scale(name, counts)
        keep = tuple(c for c in serving.containers if c not in removed) + tuple(added)
        sup.serving[name] = Serving(serving.release, keep)
        sup.refresh_routes(app)  # new web containers in, removed ones out: one assignment
        sup.retire(app, removed, retire_after=0.0)
        return scales(app, sup.state.scale(name))


async def _check_or_discard(sup: Supervisor, name: str, added: list[ContainerInfo]) -> None:
    from .checks import CheckContext, run_checks

    app = sup.app(name)

    async def one(info: ContainerInfo) -> None:
        checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
        ctx = CheckContext(info, app.port, check_host(app), app.network)
        result = await run_checks(sup.runtime, ctx, checks, app.default_checks_wait)
        if not result.ok:
            raise DeployError(f"check {result.name!r} failed on {info.name}: {result.error}")

    results = await asyncio.gather(*(one(i) for i in added), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await asyncio.gather(*(sup.runtime.remove(c.id) for c in added), return_exceptions=True)
        raise DeployError(f"scale of {name!r} failed; nothing changed: {errors[0]}")


async def stop(sup: Supervisor, name: str) -> int:
    """Take the app out of the routes (503), drain and stop its containers; remember it."""
    app = sup.app(name)
    lock = sup.lock(name)
    if lock.locked():
        raise DeployInProgress(f"a deploy of {name!r} is running; stop it when it ends")
    async with lock:
        sup.state.set_stopped(name, True)
        serving = sup.serving.pop(name, None)
        sup.refresh_routes(app)
        if serving is None:
            return 0
        sup.retire(app, list(serving.containers), retire_after=0.0)
        return len(serving.containers)


async def start(sup: Supervisor, name: str, progress: Progress | None = None) -> DeployReport:
    """Start a stopped app again: a deploy of its current release's image."""
    app = sup.app(name)
    current = sup.state.current(name)
    image = current.image if current else app.image
    if not image:
        raise DeployError(f"app {name!r} has never been deployed and has no image")
    sup.state.set_stopped(name, False)
    return await deploy(sup, app, image, kind="start", progress=progress)


async def restart(sup: Supervisor, name: str, progress: Progress | None = None) -> DeployReport:
    """A zero-downtime restart on the same image: new containers, checks, swap, retire."""
    app = sup.app(name)
    current = sup.state.current(name)
    if current is None:
        raise DeployError(f"app {name!r} has no serving release to restart")
    return await deploy(sup, app, current.image, kind="restart", progress=progress)
