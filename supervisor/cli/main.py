"""`dockyard` command line. Thin: it parses arguments, calls the library or the daemon's control
API, and is the only place that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from supervisor.model.errors import ConfigError, DockyardError

DEFAULT_CONFIGS = ("dockyard.toml", "/etc/dockyard/dockyard.toml")
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _config_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "config", None) or os.environ.get("DOCKYARD_CONFIG")
    if given:
        return Path(given)
    for candidate in DEFAULT_CONFIGS:
        if Path(candidate).exists():
            return Path(candidate)
    raise DockyardError(
        "no config file: pass -c FILE or set DOCKYARD_CONFIG "
        f"(looked for {', '.join(DEFAULT_CONFIGS)})"
    )


def _load(args: argparse.Namespace) -> Any:
    from supervisor.config.loader import load_config

    return load_config(_config_path(args))


def _client(args: argparse.Namespace) -> Any:
    from supervisor.cli.client import ControlClient

    return ControlClient(_load(args).server.control_socket)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(c).upper() for c in columns]]
    for row in rows:
        cells.append(["-" if row.get(c) is None else _cell(row.get(c)) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


# commands -------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from supervisor.daemon.daemon import serve

    return serve(_load(args), log_format=args.log_format, takeover=args.takeover)


def cmd_validate(args: argparse.Namespace) -> int:
    from supervisor.cli.summary import summarize

    if args.file:
        args.config = args.file
    config = _load(args)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(summarize(config))
    return EXIT_OK


def _follow(events: Any) -> int:
    ok = False
    for event in events:
        kind = event.get("event")
        if kind == "deploying":
            print(f"-----> deploying {event['app']} release {event['release']} ({event['image']})")
        elif kind == "step":
            status, step = event.get("status"), event.get("step")
            if status == "start":
                print(f"       {step} ...", flush=True)
            elif status == "done":
                extra = f" -> {', '.join(event['targets'])}" if event.get("targets") else ""
                print(f"       {step} done in {event.get('seconds', 0):.3f}s{extra}", flush=True)
            else:
                print(f"       {step} FAILED after {event.get('seconds', 0):.3f}s: {event.get('error')}")
        elif kind == "deployed":
            print(f"=====> deployed {event['app']} release {event['release']} in {event['seconds']:.3f}s")
            for warning in event.get("warnings") or []:
                print(f"       warning: {warning}")
        elif kind == "failed":
            print(f"=====> deploy of {event['app']} release {event['release']} FAILED: {event['reason']}")
            print("       the previous release keeps serving")
        elif kind == "result":
            ok = bool(event.get("ok"))
            if not ok and event.get("reason") and not event.get("release"):
                print(f"dockyard: {event['reason']}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAIL


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.build:
        from supervisor.cli.git import deploy_build

        return int(deploy_build(args))
    body = {"image": args.image} if args.image else {}
    return _follow(_client(args).stream(f"/v1/apps/{args.app}/deploy", body))


def cmd_rollback(args: argparse.Namespace) -> int:
    return _follow(_client(args).stream(f"/v1/apps/{args.app}/rollback"))


def cmd_restart(args: argparse.Namespace) -> int:
    return _follow(_client(args).stream(f"/v1/apps/{args.app}/restart"))


def cmd_start(args: argparse.Namespace) -> int:
    return _follow(_client(args).stream(f"/v1/apps/{args.app}/start"))


def cmd_stop(args: argparse.Namespace) -> int:
    data = _client(args).post(f"/v1/apps/{args.app}/stop")
    print(f"stopped {data['app']} ({data['stopped']} containers drained and stopped)")
    return EXIT_OK


def cmd_scale(args: argparse.Namespace) -> int:
    from supervisor.deploy.scale import parse_counts

    try:
        counts = parse_counts(args.counts)
    except ValueError as exc:
        raise DockyardError(str(exc)) from None
    data = _client(args).post(f"/v1/apps/{args.app}/scale", {"counts": counts})
    print(f"{data['app']}: " + " ".join(f"{k}={v}" for k, v in data["scale"].items()))
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    data = _client(args).post("/v1/reload")
    plan = data["plan"]
    for key in ("added", "removed", "changed", "scaled", "rerouted"):
        if plan[key]:
            print(f"{key}: {', '.join(plan[key])}")
    if plan["needs_restart"]:
        print(f"needs a daemon restart to apply: {', '.join(plan['needs_restart'])}")
    failed = False
    for app, result in data["deploys"].items():
        state = "deployed" if result["ok"] else f"FAILED: {result['reason']}"
        failed = failed or not result["ok"]
        print(f"{app}: release {result['release']} {state}")
    if not any(plan[k] for k in ("added", "removed", "changed", "scaled", "rerouted")):
        print("nothing to do")
    return EXIT_FAIL if failed else EXIT_OK


def cmd_ps(args: argparse.Namespace) -> int:
    path = f"/v1/ps?app={args.app}" if args.app else "/v1/ps"
    rows = _client(args).get(path)
    if args.json:
        _print_json(rows)
    else:
        cols = ("app", "process", "name", "release", "status", "serving", "healthy", "target",
                "inflight", "restarts", "exit_code")
        print(_table(rows, cols))
    return EXIT_OK


def cmd_routes(args: argparse.Namespace) -> int:
    rows = _client(args).get("/v1/routes")
    if args.json:
        _print_json(rows)
    else:
        print(_table(rows, ("app", "hosts", "path_prefix", "release", "targets")))
    return EXIT_OK


def cmd_releases(args: argparse.Namespace) -> int:
    rows = _client(args).get(f"/v1/apps/{args.app}/releases")
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            row["took"] = (
                f"{row['finished_at'] - row['created_at']:.3f}s" if row.get("finished_at") else None
            )
        print(_table(rows, ("number", "image", "kind", "status", "took", "reason")))
    return EXIT_OK


# parser -----------------------------------------------------------------------------


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

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=fn)
        return p

    p = add("serve", cmd_serve, "run the daemon (supervisor, proxy, scheduler) in the foreground")
    p.add_argument("--log-format", choices=("kv", "json"), default="kv")
    p.add_argument(
        "--takeover", action="store_true",
        help="take the listening sockets over from a running daemon without a gap, then it exits",
    )
    p = add("validate", cmd_validate, "check a config file and print a summary")
    p.add_argument("file", nargs="?", help="the config file (same as -c FILE)")
    p = add("deploy", cmd_deploy, "deploy an app (the configured image, or --image)")
    p.add_argument("app")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--image", help="image to deploy instead of the configured one")
    how.add_argument("--build", metavar="PATH", help="build PATH's Dockerfile, then deploy it")
    p = add("rollback", cmd_rollback, "go back to the previous successful release")
    p.add_argument("app")
    p = add("restart", cmd_restart, "zero-downtime restart of an app on the same image")
    p.add_argument("app")
    p = add("stop", cmd_stop, "take an app out of the routes, drain and stop its containers")
    p.add_argument("app")
    p = add("start", cmd_start, "start a stopped app again (its current release)")
    p.add_argument("app")
    p = add("scale", cmd_scale, "set process counts: dockyard scale APP web=3 worker=2")
    p.add_argument("app")
    p.add_argument("counts", nargs="+", metavar="PROCESS=COUNT")
    add("reload", cmd_reload, "re-read the config file and reconcile (like SIGHUP)")
    from supervisor.cli.cron import add_commands as add_cron_commands

    add_cron_commands(sub, common, _client)
    from supervisor.cli.git import add_commands as add_git_commands

    add_git_commands(sub, common, _load)
    from supervisor.cli.ops import add_commands as add_ops_commands

    add_ops_commands(sub, common, _client)
    from supervisor.cli.loadtest.command import add_command as add_loadtest_command

    add_loadtest_command(sub, common, _load)
    p = add("ps", cmd_ps, "list the containers")
    p.add_argument("app", nargs="?")
    p.add_argument("--json", action="store_true")
    p = add("routes", cmd_routes, "show the route table")
    p.add_argument("--json", action="store_true")
    p = add("releases", cmd_releases, "show an app's releases and their history")
    p.add_argument("app")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_FAIL
    except DockyardError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
