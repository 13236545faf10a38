"""`dockyard loadtest`: open-loop load through the local proxy while an app is swapped.

    generator  the open-loop load generator (worker processes; also used by bench/)
    target     where the load goes: the config's local listener, the app's host, paths, headers
    swaps      each swap through the control API, and their schedule
    report     the figures per swap and in total; report.md, summary.json, the PNG
    command    the `loadtest` subcommand: options and the run

The package imports nothing: the `dockyard` command declares `loadtest` on its parser without
importing asyncio and multiprocessing for every other command (issue #19).
"""

DEFAULT_TIMEOUT = 5.0  # s a request may take before it counts as failed (generator, command)
