"""Scale, stop and start on the serving release, without downtime.

Scaling up starts containers of the current release and adds web ones to the routes only after
their checks pass; scaling down takes containers out of the routes first, then drains and stops
them. The new counts persist in SQLite, over the config's scale, across daemon restarts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping

from supervisor.deploy.context import Context
from supervisor.deploy.flow import check_all, deploy, discard
from supervisor.deploy.report import DeployReport, Progress
from supervisor.model import defaults
from supervisor.model.errors import DeployError
from supervisor.runtime.containers import process_spec, scales
from supervisor.runtime.protocol import ContainerInfo

_INDEX = re.compile(r"\.(\d+)\.r\d+$")


def index_of(info: ContainerInfo) -> int:
    match = _INDEX.search(info.name)
    return int(match.group(1)) if match else 0


async def scale(ctx: Context, name: str, counts: Mapping[str, int]) -> dict[str, int]:
    """Bring the serving release of `name` to `counts`; return the resulting scale."""
    app = ctx.apps.app(name)
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
    with ctx.locks.hold(name, "scale"):
        serving = ctx.fleet.get(name)
        current = ctx.state.current(name)
        if serving is None or current is None:
            ctx.state.set_scale(name, counts)
            return scales(app, ctx.state.scale(name))  # applies at the next deploy
        added: list[ContainerInfo] = []
        removed: list[ContainerInfo] = []
        try:
            # Names are unique in the engine: containers of this release still retiring (a
            # scale down moments ago) keep theirs until removed, so their indexes are taken too.
            existing = await ctx.runtime.list({
                defaults.LABEL_INSTANCE: ctx.instance, defaults.LABEL_APP: name,
                defaults.LABEL_RELEASE: str(current.number),
            })
            for process, wanted in counts.items():
                mine = sorted((c for c in serving.containers if c.process == process), key=index_of)
                removed.extend(mine[wanted:])
                taken = {index_of(c) for c in [*mine, *existing] if c.process == process}
                free = (i for i in itertools.count(1) if i not in taken)
                for _ in range(wanted - len(mine)):
                    spec = process_spec(
                        app, image=current.image, instance=ctx.instance, release=current.number,
                        process=process, index=next(free),
                    )
                    added.append(await ctx.runtime.run(spec))
            await check_all(ctx, app, added)
        except Exception as exc:  # the containers started so far go; nothing else changed
            await discard(ctx, added)
            raise DeployError(f"scale of {name!r} failed; nothing changed: {exc}") from exc
        except BaseException:  # a cancel: the containers started so far go too
            await discard(ctx, added)
            raise
        ctx.state.set_scale(name, counts)  # saved once the new containers passed their checks
        keep = [c for c in serving.containers if c not in removed] + added
        ctx.fleet.resize(app, keep)  # new web containers in, removed ones out: one assignment
        ctx.retire(app, removed, retire_after=0.0)
        return scales(app, ctx.state.scale(name))


async def stop(ctx: Context, name: str, *, unrouted: bool = False) -> int:
    """Take the app out of the routes (503), drain and stop its containers; remember it.
    `unrouted`: a reload removed its routes already (deploy/reconcile.py)."""
    app = ctx.apps.app(name)
    with ctx.locks.hold(name, "stop"):
        ctx.state.set_stopped(name, True)
        serving = ctx.fleet.withdraw(app, unrouted=unrouted)
        if serving is None:
            return 0
        ctx.retire(app, list(serving.containers), retire_after=0.0)
        return len(serving.containers)


async def start(ctx: Context, name: str, progress: Progress | None = None) -> DeployReport:
    """Start a stopped app again: a deploy of its current release's image."""
    app = ctx.apps.app(name)
    current = ctx.state.current(name)
    image = current.image if current else app.image
    if not image:
        raise DeployError(f"app {name!r} has never been deployed and has no image")
    ctx.locks.refuse_if_busy(name)
    ctx.state.set_stopped(name, False)
    return await deploy(ctx, app, image, kind="start", progress=progress)


async def restart(ctx: Context, name: str, progress: Progress | None = None) -> DeployReport:
    """A zero-downtime restart on the same image: new containers, checks, swap, retire."""
    app = ctx.apps.app(name)
    current = ctx.state.current(name)
    if current is None:
        raise DeployError(f"app {name!r} has no serving release to restart")
    return await deploy(ctx, app, current.image, kind="restart", progress=progress)
