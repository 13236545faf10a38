"""The canaries being watched now: a decision by hand (`dockyard canary promote|abort`) and the
latest figures for `dockyard status`. One per daemon, in the Context; deploy/canary.py writes it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from supervisor.model.errors import DeployError

Decision = Literal["promote", "abort"]


class CanaryBoard:
    def __init__(self) -> None:
        self._decisions: dict[str, asyncio.Future[Decision]] = {}
        self.live: dict[str, dict[str, Any]] = {}  # app -> release, percent, figures, ...

    def open(self, app: str) -> asyncio.Future[Decision]:
        """A canary of `app` starts: the future a decision by hand resolves."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._decisions[app] = future
        return future

    def close(self, app: str) -> None:
        future = self._decisions.pop(app, None)
        if future is not None and not future.done():
            future.cancel()
        self.live.pop(app, None)

    def decide(self, app: str, decision: Decision) -> int:
        """Promote or abort `app`'s canary now; its release number. DeployError when none runs."""
        future = self._decisions.get(app)
        if future is None or future.done():
            raise DeployError(f"app {app!r} has no canary running")
        future.set_result(decision)
        return int(self.live.get(app, {}).get("release", 0))
