"""The `dockyard` command's entry point: yield the CPU, run the command, leave without teardown.

A `dockyard deploy` runs on the server whose proxy workers are about to take the new release's
first requests, and everything it does there is waiting on the daemon. Its own CPU (starting
Python, importing the parser's modules, printing) was measured landing in the swap's window
(issue #19, bench/RESULTS.md), so the command lowers its priority (`defaults.CLI_NICE`) before
it imports anything else, and leaves with `os._exit` after flushing: tearing its modules down
cost another 20-30 ms of CPU right after the swap. `serve` leaves the same way once its
ordered shutdown is done (the daemon's teardown, 55-100 ms of CPU, landed in a takeover's
window while the new daemon's workers served). Two commands keep their priority: `serve` (the
daemon, which yields only until it serves: supervisor/base/priority.py) and `loadtest` (its
load generator measures latency, and must not wait behind the work it measures).
"""

from __future__ import annotations

import contextlib
import os
import sys

from supervisor.base import priority
from supervisor.cli.argv import command_of
from supervisor.model import defaults

KEEP_PRIORITY = frozenset({"loadtest"})


def yield_cpu(command: str | None) -> None:
    if command == "serve":  # until it serves: the workers of the daemon it replaces are serving
        priority.lower_for_start(defaults.START_NICE)
    elif command not in KEEP_PRIORITY:
        lower_priority()


def lower_priority() -> None:
    """A command's (and the git hook's) priority, below the proxy's and the daemon's."""
    with contextlib.suppress(OSError):
        os.nice(defaults.CLI_NICE)


def entry() -> None:
    """The `dockyard` command."""
    command = command_of(sys.argv[1:])
    yield_cpu(command)
    from supervisor.cli.main import main

    try:
        code = main()
    except SystemExit as exc:  # argparse (--help, a usage error) has printed its message
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
