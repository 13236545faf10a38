"""The open-loop generator moved into dockyard as `supervisor/cli/loadtest/generator.py` (it
ships with the package for `dockyard loadtest`); this name stays for scripts that import it."""

from supervisor.cli.loadtest.generator import (
    DEFAULT_TIMEOUT,
    ERROR_KINDS,
    OUTCOMES,
    LoadResult,
    LoadRun,
    Outcome,
    Target,
    auto_workers,
    run_load,
)

__all__ = ["DEFAULT_TIMEOUT", "ERROR_KINDS", "OUTCOMES", "LoadResult", "LoadRun", "Outcome", "Target",
           "auto_workers", "run_load"]
