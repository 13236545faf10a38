"""The daemon starts at a lower CPU priority and takes its own back once it serves.

A `serve --takeover` (or a supervisor restarted after a crash) starts while the proxy workers
serve: its ~400 ms of imports, config, state and Docker calls ran at the workers' and the
clients' priority, in the takeover's latency window (issue #19, `python -m bench restart`).
So `serve` lowers its priority by `defaults.START_NICE` before it imports anything, and the
daemon restores it, on every thread it made meanwhile, once it serves. Only where it can take
it back: raising a nice value is allowed to anyone, lowering it needs root (or
CAP_SYS_NICE); without them the daemon starts at its normal priority, as before.
"""

from __future__ import annotations

import contextlib
import os

_restore_to: int | None = None  # the priority to take back; None: nothing was lowered


def lower_for_start(by: int) -> None:
    """Lower this process's priority by `by` when it can be restored later."""
    global _restore_to
    if os.geteuid() != 0:
        return
    current = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(19, current + by))
    except OSError:
        return
    _restore_to = current


def restore() -> None:
    """Take the priority back, on every thread of the process (Linux's nice value is per
    thread, and the threads started meanwhile inherited the lowered one)."""
    global _restore_to
    if _restore_to is None:
        return
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, int(tid), _restore_to)
    _restore_to = None
