"""`dockyard cron ...`: list, run, suspend, resume and runs, through the control API.

Handlers return exit codes; they never call sys.exit. `cron run` exits with the task's exit
code (1 when the run could not start, was skipped, or the code is outside 0-255).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote

from supervisor.cli import render
from supervisor.cli.common import ClientFactory, SubParsers
from supervisor.cli.exits import EXIT_FAIL, EXIT_OK


def _when(iso: str | None) -> str | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _last(last: dict[str, Any] | None) -> str | None:
    if not last:
        return None
    code = "" if last.get("exit_code") is None else f" ({last['exit_code']})"
    return f"{last['status']}{code} {_when(last.get('ended') or last.get('started')) or ''}".strip()


def _task_path(args: argparse.Namespace, action: str) -> str:
    return f"/v1/apps/{quote(args.app, safe='')}/cron/{quote(args.id, safe='')}/{action}"


def _exit_code(code: Any) -> int:
    """The task's own exit code for `cron run`; EXIT_FAIL when it has none that a shell can see."""
    return code if isinstance(code, int) and 0 <= code <= 255 else EXIT_FAIL


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    """Add `dockyard cron` and its subcommands to `sub`."""

    def cmd_list(args: argparse.Namespace) -> int:
        path = f"/v1/cron?app={quote(args.app, safe='')}" if args.app else "/v1/cron"
        rows = client_factory(args).get(path)
        if args.json:
            render.print_json(rows)
            return EXIT_OK
        table = [
            {**row, "next_run": _when(row.get("next_run")) if not row["suspended"] else "suspended",
             "last": _last(row.get("last")),
             "running": f"{row.get('running', 0)}/{row.get('max_concurrent', '-')}"}
            for row in rows
        ]
        print(render.table(table, ("app", "id", "schedule", "next_run", "last", "running", "command"),
                           padded_header=True))
        return EXIT_OK

    def cmd_run(args: argparse.Namespace) -> int:
        code = EXIT_FAIL
        for event in client_factory(args).stream(_task_path(args, "run")):
            if event.get("event") == "output":
                print(event.get("line", ""))  # flushed when the stream pauses (client._lines)
            elif event.get("event") == "result":
                status, exit_code = event.get("status"), event.get("exit_code")
                if event.get("error"):
                    print(f"dockyard: {event['error']}", file=sys.stderr)
                if status != "ok":
                    print(f"dockyard: cron {args.app} {args.id}: {status}"
                          + (f" (exit code {exit_code})" if exit_code is not None else ""),
                          file=sys.stderr)
                code = _exit_code(exit_code)
        return code

    def cmd_toggle(args: argparse.Namespace) -> int:
        client_factory(args).post(_task_path(args, args.action))
        done = {"suspend": "suspended", "resume": "resumed"}[args.action]
        print(f"{args.app} {args.id}: {done}")
        return EXIT_OK

    def cmd_runs(args: argparse.Namespace) -> int:
        rows = client_factory(args).get(_task_path(args, "runs") + f"?limit={args.limit}")
        if args.json:
            render.print_json(rows)
            return EXIT_OK
        for row in rows:
            stamp = row.get("scheduled") or row.get("started")
            row["when"] = datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else None
            row["took"] = (f"{row['ended'] - row['started']:.1f}s"
                           if row.get("ended") and row.get("started") else None)
            row["kind"] = "manual" if row["manual"] else "scheduled"
        print(render.table(rows, ("id", "when", "kind", "status", "exit_code", "took", "release"),
                           padded_header=True))
        return EXIT_OK

    help_text = "cron tasks: list, run now, suspend, resume, past runs"
    cron = sub.add_parser("cron", parents=[common], help=help_text, description=help_text)

    def cmd_cron(_args: argparse.Namespace) -> int:  # no subcommand: the help, and a failure
        cron.print_help()
        return EXIT_FAIL

    cron.set_defaults(func=cmd_cron)
    cron_sub = cron.add_subparsers(dest="cron_command", metavar="SUBCOMMAND")

    p = cron_sub.add_parser("list", parents=[common], help="tasks, next run and last result")
    p.add_argument("app", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = cron_sub.add_parser("run", parents=[common],
                            help="run a task now; stream its output; exit with its exit code")
    p.add_argument("app")
    p.add_argument("id")
    p.set_defaults(func=cmd_run)
    for action, text in (("suspend", "stop scheduling a task (kept across restarts)"),
                         ("resume", "schedule a suspended task again")):
        p = cron_sub.add_parser(action, parents=[common], help=text)
        p.add_argument("app")
        p.add_argument("id")
        p.set_defaults(func=cmd_toggle, action=action)
    p = cron_sub.add_parser("runs", parents=[common], help="a task's past runs, newest first")
    p.add_argument("app")
    p.add_argument("id")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)
