"""`dockyard loadtest`: open-loop load through the local proxy while an app is swapped.

    generator  the open-loop load generator (worker processes; also used by bench/)
    target     where the load goes: the config's local listener, the app's host, paths, headers
    swaps      each swap through the control API, and their schedule
    report     the figures per swap and in total; report.md, summary.json, the PNG
    command    the `loadtest` subcommand: options and the run

The generator's names load on first use (PEP 562): the `dockyard` command declares `loadtest`
on its parser without importing asyncio and multiprocessing for every other command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.cli.loadtest.generator import LoadResult, LoadRun, Target

__all__ = ["LoadResult", "LoadRun", "Target"]

DEFAULT_TIMEOUT = 5.0  # s a request may take before it counts as failed (generator, command)


def __getattr__(name: str) -> Any:
    if name in __all__:
        from supervisor.cli.loadtest import generator

        return getattr(generator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
