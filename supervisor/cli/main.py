"""`dockyard` command line. Thin: it builds the parser from the command modules (apps, cron,
git, ops), runs the chosen command and leaves errors to `exits`, the only place that turns
them into messages and exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from supervisor.cli.argv import command_of
from supervisor.cli.common import Parser, add_command, client, load
from supervisor.cli.exits import EXIT_OK, EXIT_USAGE, run
from supervisor.model.errors import RuntimeFailure


def cmd_serve(args: argparse.Namespace) -> int:
    # lazy: the daemon imports aiohttp, docker and apscheduler (~400 ms); no other command needs them
    from supervisor.daemon.daemon import serve

    return serve(load(args), log_format=args.log_format, takeover=args.takeover)


def cmd_validate(args: argparse.Namespace) -> int:
    from supervisor.cli.summary import summarize  # lazy: the model's types, for this command only

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


# Where each command is declared: `dockyard COMMAND` imports only that module (each module's
# imports are CPU a `dockyard deploy` spends on the server it is swapping; issue #19), every
# other word (none, --help, a typo) gets the whole parser. The modules' functions are the
# definitions; tests/supervisor/test_cli.py checks this index against them.
REGISTRARS: dict[str, tuple[str, str, str]] = {  # key: (module, function, what it is given)
    "apps": ("supervisor.cli.apps", "add_commands", "client"),
    "cron": ("supervisor.cli.cron", "add_commands", "client"),
    "canary": ("supervisor.cli.canary", "add_commands", "client"),
    "git": ("supervisor.cli.git", "add_commands", "load"),
    "ops": ("supervisor.cli.ops", "add_commands", "client"),
    "loadtest": ("supervisor.cli.loadtest.command", "add_command", "load"),
    "env": ("supervisor.cli.env", "add_commands", "client"),
    "oneoff": ("supervisor.cli.oneoff", "add_commands", "client"),
    "maintenance": ("supervisor.cli.maintenance", "add_commands", "client"),
    "views": ("supervisor.cli.apps", "add_views", "client"),
}
DECLARED_IN: dict[str, str] = {
    **dict.fromkeys(("deploy", "rollback", "restart", "stop", "start", "scale", "reload", "plan"), "apps"),
    "cron": "cron", "canary": "canary", "git": "git", "git-receive-pack": "git",
    **dict.fromkeys(("logs", "status", "install"), "ops"),
    "loadtest": "loadtest", "env": "env", "run": "oneoff", "enter": "oneoff",
    "maintenance": "maintenance",
    **dict.fromkeys(("ps", "nodes", "routes", "releases"), "views"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser: for `command` alone when it is one of DECLARED_IN's, else for them all."""
    common = Parser(add_help=False)
    common.add_argument(
        "-c", "--config", default=argparse.SUPPRESS,
        help="config file (default: $DOCKYARD_CONFIG, ./dockyard.toml, /etc/dockyard/dockyard.toml)",
    )
    parser = Parser(
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
    keys = [DECLARED_IN[command]] if command in DECLARED_IN else list(REGISTRARS)
    for key in keys:
        module, function, given = REGISTRARS[key]
        register = getattr(importlib.import_module(module), function)
        register(sub, common, client if given == "client" else load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(words))
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


if __name__ == "__main__":
    sys.exit(main())
