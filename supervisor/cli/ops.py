"""Day-two commands: `dockyard logs` (here), `dockyard status` (cli/status.py) and `dockyard
install` (cli/install.py).

Handlers return exit codes and raise DockyardError subclasses; `supervisor.cli.exits` turns
those into messages. Wire them in with `add_commands(sub, common, client_factory)`.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from supervisor.cli import render
from supervisor.cli.common import ClientFactory, SubParsers, add_command
from supervisor.cli.exits import EXIT_OK
from supervisor.cli.install import CONFIG_DIR, CONFIG_NAME, UNIT_NAME, install
from supervisor.cli.status import render_status, status_report
from supervisor.model.errors import DockyardError
from supervisor.runtime import applogs, engine

# logs -------------------------------------------------------------------------------------


def logs(
    client: Any,
    docker: Any,
    app: str,
    *,
    process: str | None = None,
    tail: int | None = applogs.DEFAULT_TAIL,
    follow: bool = False,
    prefix: bool = True,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Print the app's serving containers' logs; the daemon says which containers serve."""
    out = out or sys.stdout
    rows = client.get(f"/v1/ps?app={quote(app, safe='')}")
    sources = applogs.sources_from_ps(rows, process)
    if not sources:
        which = f" of process type {process!r}" if process else ""
        raise applogs.LogsError(f"app {app!r} has no serving containers{which}")
    width = max(len(s.name) for s in sources)
    lines: Iterator[applogs.LogLine] | list[applogs.LogLine]
    lines = applogs.follow(docker, sources, tail, stop) if follow else applogs.read(docker, sources, tail)
    for line in lines:
        out.write(applogs.format_line(line, width, prefix) + "\n")
        if follow:
            out.flush()
    return EXIT_OK


def _tail(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of lines or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# commands ---------------------------------------------------------------------------------


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    """Add `logs`, `status` and `install` to `sub` (replaces cli.py's plain `status`)."""

    def cmd_logs(args: argparse.Namespace) -> int:
        try:
            return logs(client_factory(args), engine.connect(), args.app, process=args.process, tail=args.num,
                        follow=args.follow, prefix=not args.quiet)
        except KeyboardInterrupt:
            return EXIT_OK

    def cmd_status(args: argparse.Namespace) -> int:
        report = status_report(client_factory(args))
        if args.json:
            render.print_json(report)
        else:
            print(render_status(report))
        return EXIT_OK

    def cmd_install(args: argparse.Namespace) -> int:
        try:
            report = install(Path(args.prefix), enable=args.enable, binary=not args.no_binary)
        except OSError as exc:  # not root, a read-only /etc...: one line, not a traceback
            raise DockyardError(f"cannot install: {exc}") from exc
        for line in report.done:
            print(line)
        if not args.enable:
            print(f"next: edit /{CONFIG_DIR}/{CONFIG_NAME}, then "
                  f"`systemctl daemon-reload && systemctl enable --now {UNIT_NAME}`"
                  " (or run `dockyard install --enable`)")
        return EXIT_OK

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        return add_command(sub, common, name, fn, help)

    p = add("logs", cmd_logs, "the logs of an app's serving containers, merged and prefixed")
    p.add_argument("app")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("-p", "--process", metavar="TYPE", help="only this process type (web, worker...)")
    p.add_argument("-n", "--num", type=_tail, default=applogs.DEFAULT_TAIL, metavar="N",
                   help=f"lines per container to start with, or 'all' (default {applogs.DEFAULT_TAIL})")
    p.add_argument("-q", "--quiet", action="store_true", help="no container-name prefix")
    p = add("status", cmd_status, "daemon uptime and version; per app release, routes, "
            "in-flight requests, container health and next cron runs")
    p.add_argument("--json", action="store_true")
    p = add("install", cmd_install, "install the systemd unit, /etc/dockyard/dockyard.toml "
            "and /var/lib/dockyard")
    p.add_argument("--prefix", default="/", metavar="DIR",
                   help="install under DIR instead of / (for packaging and tests)")
    p.add_argument("--enable", action="store_true",
                   help="also run systemctl daemon-reload and enable --now dockyard")
    p.add_argument("--no-binary", action="store_true",
                   help="do not put dockyard at /usr/local/bin/dockyard")
