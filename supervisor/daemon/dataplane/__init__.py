"""The data plane apart from the control plane: proxy worker processes fed by the supervisor.

See docs/architecture.md ("Two planes"). `WorkerPool` (pool.py) is the daemon's route sink;
`handle.py` is one worker's process and channel; `feeds.py` carries certificates and ACME
challenges to the workers; `orphans.py` finds the workers of a supervisor that died or handed
them over, and adopts or replaces them.
"""

from __future__ import annotations

from supervisor.daemon.dataplane.orphans import (
    Orphan,
    adopt_workers,
    find_orphans,
    retire_orphans,
    take_listeners,
)
from supervisor.daemon.dataplane.pool import WorkerPool

__all__ = ["Orphan", "WorkerPool", "adopt_workers", "find_orphans", "retire_orphans", "take_listeners"]
