"""Test-only fault injection: `DOCKYARD_TEST_KILL_AT=<point>` kills the daemon there.

The fault-scenario tests (tests/supervisor/test_faults_docker.py) set it to prove that a
`kill -9` at the worst moment of a deploy loses nothing. Never set it in production: the
daemon SIGKILLs itself the first time it reaches the named point. The points:

- `mid-build`: a build's context is on disk under `<state_dir>/builds`, the image not built yet;
- `after-commit`: a deploy committed its release and retire timers, the routes not yet moved;
- `after-swap`: the routes moved to the new release, nothing after the swap done yet.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Literal

KillPoint = Literal["mid-build", "after-commit", "after-swap"]
ENV = "DOCKYARD_TEST_KILL_AT"
log = logging.getLogger("dockyard.supervisor")


def kill_point(point: KillPoint) -> None:
    """SIGKILL this process when DOCKYARD_TEST_KILL_AT names `point` (tests only)."""
    if os.environ.get(ENV) == point:
        log.warning("test hook %s=%s: killing the daemon pid=%d", ENV, point, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
