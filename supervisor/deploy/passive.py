"""Passive health: a target the proxy found refusing connections leaves every route table.

The proxy (in this process or in a worker process) calls `PassiveHealth.report(app, target)`
when connecting to a target is refused or the connection is reset before any answer. The
proxy has already retried the request elsewhere; what is left is to stop sending the next
requests there, on every worker at once, as nginx's `max_fails` does per worker and
kamal-proxy does not. One report is not trusted blindly (a worker may still hold a table a
swap has replaced, or the refusal may have been a single overflowing accept queue): the
supervisor confirms with one connection of its own, and only a refusal takes the container
out (`Fleet.mark_down`: one table, sent to every worker). A timeout does not: a busy app is
not a dead one. The watcher (deploy/watch.py) puts the container back when its checks pass,
as for any container out of rotation.
"""

from __future__ import annotations

import asyncio
import logging
import time

from supervisor.base.address import split_listen
from supervisor.deploy.context import Context
from supervisor.deploy.fleet import targets_of
from supervisor.model import defaults
from supervisor.ops.tasks import TaskSet
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")


class PassiveHealth:
    def __init__(self, ctx: Context, *, confirm_timeout: float = defaults.PASSIVE_CONFIRM_TIMEOUT,
                 quiet: float = defaults.PASSIVE_QUIET) -> None:
        self.ctx = ctx
        self.confirm_timeout = confirm_timeout
        self.quiet = quiet  # seconds a target's reports are ignored after a confirmation
        self._tasks = TaskSet()
        self._checking: set[str] = set()
        self._checked: dict[str, float] = {}  # target -> monotonic time of its last confirmation
        self.confirmed = 0  # targets taken out by a confirmed report (status, tests)

    def report(self, app: str, target: str) -> None:
        """A proxy saw `target` of `app` refuse or reset (sync: called from the proxy's hook)."""
        if target in self._checking or time.monotonic() - self._checked.get(target, -1e9) < self.quiet:
            return
        found = self._serving(app, target)
        if found is None:
            return  # not a serving target (retired, another release, unknown app): nothing to do
        self._checking.add(target)
        self._tasks.spawn(self._confirm(app, target, found))

    async def settled(self) -> None:
        """Wait until every report made so far is confirmed or dismissed."""
        await self._tasks.wait_idle()

    async def close(self) -> None:
        await self._tasks.close()

    def _serving(self, app: str, target: str) -> ContainerInfo | None:
        spec = self.ctx.apps.config.apps.get(app)
        serving = self.ctx.fleet.get(app)
        if spec is None or serving is None:
            return None
        for info in serving.containers:
            if not self.ctx.fleet.is_down(info.id) and target in targets_of(spec, (info,)):
                return info
        return None

    async def _confirm(self, app: str, target: str, info: ContainerInfo) -> None:
        try:
            refused = await refuses(target, self.confirm_timeout)
        finally:
            self._checking.discard(target)
            self._checked[target] = time.monotonic()
        spec = self.ctx.apps.config.apps.get(app)
        if not refused or spec is None or self._serving(app, target) is None:
            log.info("passive report not confirmed app=%s target=%s", app, target)
            return
        self.confirmed += 1
        log.warning("target refused app=%s container=%s target=%s: out of rotation until its checks pass",
                    app, info.name, target)
        self.ctx.fleet.mark_down(spec, info.id)


async def refuses(target: str, timeout: float) -> bool:
    """Whether a TCP connection to `target` ("host:port") is refused or reset (not: timed out)."""
    host, port = split_listen(target)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return False
    except OSError:
        return True
    writer.close()
    return False
