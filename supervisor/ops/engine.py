"""Whether the Docker engine answers, as the daemon last saw it (shown by `dockyard status`).

Set by the engine monitor (deploy/engine.py) and by the daemon's start; read by the watcher
(which holds its periodic checks while the engine is away), the control API and the CLI.
"""

from __future__ import annotations

import time
from typing import Any


class EngineHealth:
    def __init__(self) -> None:
        self.reachable = True
        self.since = time.time()
        self.error = ""
        self.outages = 0  # how many times the engine went away since the daemon started

    def down(self, error: str) -> bool:
        """Record the engine as unreachable; True when it was reachable until now."""
        self.error = error
        if not self.reachable:
            return False
        self.reachable, self.since = False, time.time()
        self.outages += 1
        return True

    def up(self) -> bool:
        """Record the engine as reachable; True when it was unreachable until now."""
        if self.reachable:
            return False
        self.reachable, self.since, self.error = True, time.time(), ""
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"reachable": self.reachable, "since": round(self.since, 3), "error": self.error,
                "outages": self.outages}
