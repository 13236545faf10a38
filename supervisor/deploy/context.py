"""The parts every supervisor operation works with, handed to each as one value.

The operations (deploy/flow.py, scale.py, adopt.py, watch.py, reconcile.py) are functions of a
`Context`; the `Supervisor` (supervisor.py) only builds one and offers the operations as
methods. The parts are small objects with their own rules: the fleet (what serves, the swap),
the definitions (what each app is), the per-app operation locks and the retirer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from supervisor.deploy.board import CanaryBoard
from supervisor.deploy.definitions import Definitions
from supervisor.deploy.fleet import Fleet, targets_of, web_of
from supervisor.deploy.locks import OperationLocks
from supervisor.deploy.retire import Retirer
from supervisor.model import defaults
from supervisor.model.spec import AppSpec
from supervisor.ops.engine import EngineHealth
from supervisor.ops.events import EventBus
from supervisor.runtime.protocol import ContainerInfo, Runtime
from supervisor.store.releases import StateStore


@dataclass(frozen=True, slots=True)
class Context:
    runtime: Runtime
    state: StateStore
    fleet: Fleet
    apps: Definitions
    locks: OperationLocks
    retirer: Retirer
    events: EventBus = field(default_factory=EventBus)  # deploy and retire events (ops/events.py)
    canaries: CanaryBoard = field(default_factory=CanaryBoard)  # canaries watched now (deploy/canary.py)
    engine: EngineHealth = field(default_factory=EngineHealth)  # does Docker answer? (deploy/engine.py)

    @property
    def instance(self) -> str:
        """The value of the dockyard.instance label on everything this daemon creates."""
        return self.apps.config.server.instance

    def retire_timers(self, app: AppSpec, old: Sequence[ContainerInfo]) -> dict[str, float]:
        """container id -> when it is stopped: web ones `retire_after` from now, others
        `stop_timeout` (a deploy commits these with the release, before the swap)."""
        now = time.time()
        return {c.id: now + (app.retire_after if c.process == defaults.WEB_PROCESS
                             else app.stop_timeout) for c in old}

    def retire(
        self,
        app: AppSpec,
        old: Sequence[ContainerInfo],
        *,
        retire_after: float | None = None,
        timers: Mapping[str, float] | None = None,
    ) -> None:
        """Old containers, already out of the routes: web ones drain, then all stop.
        `timers`: from retire_timers(), already in SQLite; None: written now."""
        web = web_of(old)
        others = [c for c in old if c.process != defaults.WEB_PROCESS]
        web_at = min((timers[c.id] for c in web), default=None) if timers else None
        others_at = min((timers[c.id] for c in others), default=None) if timers else None
        self.retirer.retire_web(
            app.name,
            web,
            targets_of(app, web),
            drain_timeout=app.drain_timeout,
            retire_after=app.retire_after if retire_after is None else retire_after,
            stop_timeout=app.stop_timeout,
            stop_at=web_at,
        )
        self.retirer.retire_now(app.name, others, app.stop_timeout, stop_at=others_at)
        self.fleet.forget(old)
