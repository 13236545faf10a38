"""`dockyard`'s exit codes, and the one place where an error becomes a message and a code.

Library code raises DockyardError subclasses and never exits; commands return one of these
codes (or a task's own, for `cron run`); `run` calls a command and turns what it raises into
a message on stderr and EXIT_FAIL, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from supervisor.model.errors import ConfigError, DockyardError

EXIT_OK = 0
EXIT_FAIL = 1  # the command failed: a failed deploy, an unreachable daemon, a bad config...
EXIT_USAGE = 2  # no command given (argparse exits with 2 itself for bad arguments)
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it

Command = Callable[[argparse.Namespace], int]


def report(exc: DockyardError) -> int:
    """Print `exc` for a person (a config error: one line per problem) and return EXIT_FAIL."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
    else:
        print(f"dockyard: {exc}", file=sys.stderr, flush=True)
    return EXIT_FAIL


def run(command: Command, args: argparse.Namespace) -> int:
    """Run one command; its errors become messages and exit codes here and nowhere else."""
    try:
        return int(command(args))
    except DockyardError as exc:
        return report(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `dockyard ps | head -1`
        return EXIT_FAIL
