"""`dockyard` command line. Thin: it builds the parser from the command modules (apps, cron,
git, ops), runs the chosen command and leaves errors to `exits`, the only place that turns
them into messages and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from supervisor.cli import apps, canary, cron, env, git, maintenance, oneoff, ops
from supervisor.cli.common import add_command, client, load
from supervisor.cli.exits import EXIT_OK, EXIT_USAGE, run
from supervisor.cli.loadtest import command as loadtest
from supervisor.cli.summary import summarize
from supervisor.model.errors import RuntimeFailure


def cmd_serve(args: argparse.Namespace) -> int:
    # lazy: the daemon imports aiohttp, docker and apscheduler (~400 ms); no other command needs them
    from supervisor.daemon.daemon import serve

    return serve(load(args), log_format=args.log_format, takeover=args.takeover)


def cmd_validate(args: argparse.Namespace) -> int:
    if args.file:
        args.config = args.file
    config = load(args)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if any(app.scheduler == "swarm" for app in config.apps.values()):
        from supervisor.runtime.swarmread import swarm_problem  # lazy: the Docker SDK

        problem = swarm_problem()
        if problem:
            raise RuntimeFailure(problem)
    print(summarize(config))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", default=argparse.SUPPRESS,
        help="config file (default: $DOCKYARD_CONFIG, ./dockyard.toml, /etc/dockyard/dockyard.toml)",
    )
    parser = argparse.ArgumentParser(
        prog="dockyard", parents=[common],
        description="Zero-downtime container supervisor with its own reverse proxy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = add_command(sub, common, "serve", cmd_serve,
                    "run the daemon (supervisor, proxy, scheduler) in the foreground")
    p.add_argument("--log-format", choices=("kv", "json"), default="kv")
    p.add_argument(
        "--takeover", action="store_true",
        help="take the listening sockets over from a running daemon without a gap, then it exits",
    )
    p = add_command(sub, common, "validate", cmd_validate, "check a config file and print a summary")
    p.add_argument("file", nargs="?", help="the config file (same as -c FILE)")
    apps.add_commands(sub, common, client)
    cron.add_commands(sub, common, client)
    canary.add_commands(sub, common, client)
    git.add_commands(sub, common, load)
    ops.add_commands(sub, common, client)
    loadtest.add_command(sub, common, load)
    env.add_commands(sub, common, client)
    oneoff.add_commands(sub, common, client)
    maintenance.add_commands(sub, common, client)
    apps.add_views(sub, common, client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = None
    if "--" in words:  # `run APP [OPTIONS] -- CMD ...`: the command's words are its own
        cut = words.index("--")
        head, _unknown = parser.parse_known_args(words[:cut])
        if getattr(head, "trailing", False):
            args = parser.parse_args(words[:cut])
            args.command_words = words[cut + 1:]
    if args is None:
        args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return run(args.func, args)


def entry() -> None:
    """The `dockyard` command: `main()`, then out without the interpreter's teardown.

    Tearing down the CLI's few hundred modules costs 20-30 ms of CPU, and for `dockyard deploy`
    it lands right after the swap, on the server whose proxy workers are taking the new
    release's first requests: they were measured waiting on the run queue then (issue #19,
    bench/RESULTS.md). Output is flushed first; nothing in the CLI needs atexit."""
    try:
        code = main()
    except SystemExit as exc:  # argparse (--help, a usage error) has printed its message
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if "serve" in sys.argv[1:]:  # the daemon: its ordered shutdown is done; exit as usual
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
