"""`python -m supervisor.cli ...`: the same as the `dockyard` command."""

import sys

from supervisor.cli.main import main

sys.exit(main())
