"""The app commands, through the daemon's control API: deploy, rollback, restart, stop, start,
scale and reload change what runs; ps, routes and releases show it."""

from __future__ import annotations

import argparse
from urllib.parse import quote

from supervisor.cli import canary, render
from supervisor.cli.common import ClientFactory, SubParsers, add_command, config_path
from supervisor.cli.exits import EXIT_FAIL, EXIT_OK
from supervisor.cli.stream import follow
from supervisor.cli.views import PLAN_KEYS, render_explain, render_plan
from supervisor.model.errors import DockyardError

EXIT_CHANGES = 2  # `dockyard plan`: the file would change something (for CI)


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    """Add deploy, rollback, restart, stop, start, scale and reload to `sub`."""

    def cmd_deploy(args: argparse.Namespace) -> int:
        if args.build:  # subprocess and the git helpers load for --build only
            from supervisor.cli.git import deploy_build

            return deploy_build(args)
        body: dict[str, object] = {"image": args.image} if args.image else {}
        chosen = canary.canary_body(args)
        if chosen is not None:
            body["canary"] = chosen
        return follow(client_factory(args).stream(f"/v1/apps/{args.app}/deploy", body))

    def cmd_rollback(args: argparse.Namespace) -> int:
        return follow(client_factory(args).stream(f"/v1/apps/{args.app}/rollback"))

    def cmd_restart(args: argparse.Namespace) -> int:
        return follow(client_factory(args).stream(f"/v1/apps/{args.app}/restart"))

    def cmd_start(args: argparse.Namespace) -> int:
        return follow(client_factory(args).stream(f"/v1/apps/{args.app}/start"))

    def cmd_stop(args: argparse.Namespace) -> int:
        data = client_factory(args).post(f"/v1/apps/{args.app}/stop")
        print(f"stopped {data['app']} ({data['stopped']} containers drained and stopped)")
        return EXIT_OK

    def cmd_scale(args: argparse.Namespace) -> int:
        try:
            counts = parse_counts(args.counts)
        except ValueError as exc:
            raise DockyardError(str(exc)) from None
        data = client_factory(args).post(f"/v1/apps/{args.app}/scale", {"counts": counts})
        print(f"{data['app']}: " + " ".join(f"{k}={v}" for k, v in data["scale"].items()))
        return EXIT_OK

    def cmd_reload(args: argparse.Namespace) -> int:
        data = client_factory(args).post("/v1/reload")
        plan = data["plan"]
        for key in PLAN_KEYS:
            if plan[key]:
                print(f"{key}: {', '.join(plan[key])}")
        if plan["needs_restart"]:
            print(f"needs a daemon restart to apply: {', '.join(plan['needs_restart'])}")
        failed = False
        for app, result in data["deploys"].items():
            state = "deployed" if result["ok"] else f"FAILED: {result['reason']}"
            failed = failed or not result["ok"]
            print(f"{app}: release {result['release']} {state}")
        if not any(plan[k] for k in PLAN_KEYS):
            print("nothing to do")
        return EXIT_FAIL if failed else EXIT_OK

    def cmd_plan(args: argparse.Namespace) -> int:
        path = config_path(args).absolute()
        data = client_factory(args).post("/v1/plan", {"path": str(path)})
        if args.json:
            render.print_json(data)
        else:
            print(render_plan(data["plan"]))
        return EXIT_CHANGES if data["changes"] else EXIT_OK

    p = add_command(sub, common, "deploy", cmd_deploy, "deploy an app (the configured image, or --image)")
    p.add_argument("app")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--image", help="image to deploy instead of the configured one")
    how.add_argument("--build", metavar="PATH", help="build PATH's Dockerfile, then deploy it")
    canary.add_deploy_options(p)
    for name, cmd, text in (
        ("rollback", cmd_rollback, "go back to the previous successful release"),
        ("restart", cmd_restart, "zero-downtime restart of an app on the same image"),
        ("stop", cmd_stop, "take an app out of the routes, drain and stop its containers"),
        ("start", cmd_start, "start a stopped app again (its current release)"),
    ):
        p = add_command(sub, common, name, cmd, text)
        p.add_argument("app")
    p = add_command(sub, common, "scale", cmd_scale, "set process counts: dockyard scale APP web=3 worker=2")
    p.add_argument("app")
    p.add_argument("counts", nargs="+", metavar="PROCESS=COUNT")
    add_command(sub, common, "reload", cmd_reload, "re-read the config file and reconcile (like SIGHUP)")
    p = add_command(sub, common, "plan", cmd_plan, "what `reload` would do with the config file, "
                    "changing nothing: exit 0 when nothing would change, 2 when something would")
    p.add_argument("--json", action="store_true")


def add_views(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    """Add ps, routes and releases to `sub`: tables, or --json."""

    def cmd_ps(args: argparse.Namespace) -> int:
        path = f"/v1/ps?app={args.app}" if args.app else "/v1/ps"
        rows = client_factory(args).get(path)
        if args.json:
            render.print_json(rows)
        else:
            cols: tuple[str, ...] = ("app", "process", "name", "release", "status", "serving",
                                     "healthy", "target", "inflight", "restarts", "exit_code")
            if any(row.get("node") for row in rows):  # swarm tasks: where each runs
                cols += ("node",)
            print(render.table(rows, cols))
        return EXIT_OK

    def cmd_nodes(args: argparse.Namespace) -> int:
        rows = client_factory(args).get("/v1/nodes")
        if args.json:
            render.print_json(rows)
        else:
            for row in rows:
                row["tasks"] = ", ".join(row["tasks"]) or "-"
                row["role"] = f"{row['role']} (leader)" if row.get("leader") else row["role"]
            print(render.table(rows, ("hostname", "addr", "role", "state", "availability", "tasks")))
        return EXIT_OK

    def cmd_routes(args: argparse.Namespace) -> int:
        if args.explain:
            result = client_factory(args).get(f"/v1/explain?url={quote(args.explain, safe='')}")
            if args.json:
                render.print_json(result)
            else:
                print(render_explain(result))
            return EXIT_OK if result.get("app") else EXIT_FAIL
        rows = client_factory(args).get("/v1/routes")
        if args.json:
            render.print_json(rows)
        else:
            cols: tuple[str, ...] = ("app", "hosts", "path_prefix", "release", "targets")
            if any(row.get("policies") for row in rows):  # the keys set besides the defaults
                cols += ("policies",)
                for row in rows:
                    row["policies"] = ",".join(row.get("policies") or {}) or "-"
            print(render.table(rows, cols))
        return EXIT_OK

    def cmd_releases(args: argparse.Namespace) -> int:
        rows = client_factory(args).get(f"/v1/apps/{args.app}/releases")
        if args.json:
            render.print_json(rows)
        else:
            for row in rows:
                row["took"] = (
                    f"{row['finished_at'] - row['created_at']:.3f}s" if row.get("finished_at") else None
                )
                if row.get("canary"):
                    c = row["canary"]
                    row["canary"] = f"{c['spec']['percent']:g}% {c['state']}"
                    if c["state"] == "running" and c.get("figures"):
                        row["reason"] = canary.line(c["figures"])
            canaries = any(row.get("canary") for row in rows)
            cols = ("number", "image", "kind", "status", *(("canary",) if canaries else ()), "took", "reason")
            print(render.table(rows, cols))
        return EXIT_OK

    p = add_command(sub, common, "ps", cmd_ps, "list the containers")
    p.add_argument("app", nargs="?")
    p.add_argument("--json", action="store_true")
    p = add_command(sub, common, "nodes", cmd_nodes, "list the Swarm's nodes and the tasks on each")
    p.add_argument("--json", action="store_true")
    p = add_command(sub, common, "routes", cmd_routes, "show the route table")
    p.add_argument("--explain", metavar="URL",
                   help="which route, app, release and targets would serve URL, and why")
    p.add_argument("--json", action="store_true")
    p = add_command(sub, common, "releases", cmd_releases, "show an app's releases and their history")
    p.add_argument("app")
    p.add_argument("--json", action="store_true")


def parse_counts(words: list[str]) -> dict[str, int]:
    """`web=3 worker=2` -> {"web": 3, "worker": 2}; ValueError names the bad word."""
    counts: dict[str, int] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name or not value.isdigit():
            raise ValueError(f"expected PROCESS=COUNT (e.g. web=3), got {word!r}")
        counts[name] = int(value)
    return counts
