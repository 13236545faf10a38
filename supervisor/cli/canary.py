"""`dockyard canary promote|abort APP`: decide a running canary now (docs/canary.md), and the
one-line rendering of a canary's figures used by `deploy`, `status` and `releases`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from supervisor.cli.common import ClientFactory, SubParsers, add_command
from supervisor.cli.exits import EXIT_OK


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    def cmd_canary(args: argparse.Namespace) -> int:
        data = client_factory(args).post(f"/v1/apps/{args.app}/canary/{args.decision}")
        done = "promoting" if args.decision == "promote" else "rolling back"
        print(f"{data['app']}: {done} canary release {data['release']} (the deploy stream shows the rest)")
        return EXIT_OK

    p = add_command(sub, common, "canary", cmd_canary, "decide a running canary now: promote or abort")
    p.add_argument("decision", choices=("promote", "abort"))
    p.add_argument("app")


def add_deploy_options(p: argparse.ArgumentParser) -> None:
    """--canary PERCENT [--for S] [--max-error-rate R] [--max-latency-ratio X] | --no-canary."""
    p.add_argument("--canary", type=float, metavar="PERCENT",
                   help="route PERCENT of new clients to the new release first, then promote or roll back")
    p.add_argument("--for", dest="canary_for", type=float, metavar="SECONDS", help="how long to watch the canary")
    p.add_argument("--max-error-rate", type=float, metavar="R",
                   help="roll back when the canary's error rate exceeds the old release's by more (0.02 = 2 points)")
    p.add_argument("--max-latency-ratio", type=float, metavar="X",
                   help="roll back when the canary's p99 is more than X times the old release's")
    p.add_argument("--no-canary", action="store_true", help="a plain deploy even if the app sets `canary`")


def canary_body(args: argparse.Namespace) -> bool | dict[str, float] | None:
    """The deploy body's `canary`: None (the app's setting), False, or the options given."""
    if getattr(args, "no_canary", False):
        return False
    given = {"percent": args.canary, "for": args.canary_for, "max_error_rate": args.max_error_rate,
             "max_latency_ratio": args.max_latency_ratio}
    chosen = {k: v for k, v in given.items() if v is not None}
    return chosen or None


def line(figures: Mapping[str, Any]) -> str:
    """`serving r3: 812 req, 0.0% 5xx, p99 4.1 ms | canary r4: 95 req, 0.0% 5xx, p99 5.0 ms`."""
    def one(name: str, release: Any, f: Mapping[str, Any]) -> str:
        p99 = f.get("p99_ms")
        return (f"{name} r{release}: {f.get('requests', 0)} req, {float(f.get('error_rate', 0)):.1%} errors, "
                f"p99 {'-' if p99 is None else f'{p99} ms'}")

    return (one("serving", figures.get("serving_release", "?"), figures.get("serving") or {}) + " | "
            + one("canary", figures.get("release", "?"), figures.get("canary") or {}))
