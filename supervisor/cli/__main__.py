"""`python -m supervisor.cli ...`: the same as the `dockyard` command."""

from supervisor.cli.main import entry

entry()
