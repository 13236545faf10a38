"""Starting a group of containers one by one, all or nothing, even when cancelled.

The deploy starts each release x process type as a group (`Runtime.run_group`): Swarm makes it
one service; an engine of plain containers starts each on its own, in parallel, with this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from supervisor.runtime.protocol import ContainerInfo, ContainerSpec

Run = Callable[[ContainerSpec], Awaitable[ContainerInfo]]
Remove = Callable[[str], Awaitable[None]]


async def run_each(specs: Sequence[ContainerSpec], run: Run, remove: Remove) -> list[ContainerInfo]:
    """`run` every spec in parallel. A failure removes the containers started and raises it.
    Cancelled, it removes those started, and those still starting once their start ends (an
    engine call in a thread finishes anyway), then raises."""
    runs = [asyncio.ensure_future(run(spec)) for spec in specs]
    try:
        await asyncio.wait(runs)
    except asyncio.CancelledError:
        for pending in runs:
            pending.add_done_callback(lambda done: _remove_late(done, remove))
        raise
    started = [r.result() for r in runs if not r.cancelled() and r.exception() is None]
    failed = [r.exception() for r in runs if not r.cancelled() and r.exception() is not None]
    if failed:
        await asyncio.gather(*(remove(c.id) for c in started), return_exceptions=True)
        raise failed[0]  # type: ignore[misc]
    return started


def _remove_late(run: asyncio.Future[ContainerInfo], remove: Remove) -> None:
    if not run.cancelled() and run.exception() is None:
        with contextlib.suppress(RuntimeError):  # no loop left: the next start's adoption cleans
            asyncio.ensure_future(remove(run.result().id))
