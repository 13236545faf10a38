"""base/priority.py: `serve` starts at a lower priority and takes it back, on every thread,
once it serves (as root; elsewhere it keeps its priority, since it could not take it back)."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, os, threading
from supervisor.base import priority
before = os.getpriority(os.PRIO_PROCESS, 0)
priority.lower_for_start(10)
lowered = os.getpriority(os.PRIO_PROCESS, 0)
started = threading.Event(); done = threading.Event(); seen = {}
def work():  # a thread started while lowered (an executor's, a log follower's)
    seen["tid"] = threading.get_native_id(); started.set(); done.wait(5)
threading.Thread(target=work).start(); started.wait(5)
priority.restore()
after = os.getpriority(os.PRIO_PROCESS, 0)
thread_after = os.getpriority(os.PRIO_PROCESS, seen["tid"])
done.set()
print(json.dumps({"root": os.geteuid() == 0, "before": before, "lowered": lowered,
                  "after": after, "thread_after": thread_after}))
"""


def test_serve_starts_lower_and_takes_its_priority_back_on_every_thread() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    if got["root"]:
        assert got["lowered"] == min(19, got["before"] + 10)
    else:  # it could not take the priority back: it does not lower it
        assert got["lowered"] == got["before"]
    assert got["after"] == got["before"] and got["thread_after"] == got["before"]
