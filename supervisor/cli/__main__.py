"""`python -m supervisor.cli ...`: the same as the `dockyard` command."""

from supervisor.cli.entry import entry

entry()
