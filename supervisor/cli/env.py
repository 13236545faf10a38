"""`dockyard env`: an app's environment, and the overlay `env set` / `env unset` change.

    dockyard env APP [--show]                 every variable, its source, values masked
    dockyard env get APP KEY                  one value, as is (for scripts)
    dockyard env set APP KEY=VALUE... [--no-restart]
    dockyard env unset APP KEY... [--no-restart]

`env APP` is the listing; `get`, `set` and `unset` are words an app cannot be named after
(an app name is lower-case letters, digits and '-', and these three are reserved here).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from supervisor.cli import render
from supervisor.cli.common import ClientFactory, SubParsers, add_command
from supervisor.cli.exits import EXIT_FAIL, EXIT_OK
from supervisor.cli.stream import follow
from supervisor.model.errors import DockyardError

MASK = "********"
VERBS = ("get", "set", "unset")


def parse_assignments(words: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` words -> {KEY: VALUE} (the value may hold '=' and be empty); DockyardError
    names the first bad word, before anything is sent."""
    env: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockyardError(f"expected KEY=VALUE, got {word!r}")
        if not key.replace("_", "a").isalnum() or key[0].isdigit() or not key.isascii():
            raise DockyardError(f"bad env var name {key!r}: letters, digits and '_', not starting with a digit")
        env[key] = value
    return env


def listing(rows: Iterable[dict[str, Any]], show: bool) -> str:
    shown = [{**r, "value": r["value"] if show else MASK} for r in rows]
    if not shown:
        return "(no variables)"
    return render.table(shown, ("key", "value", "source"))


def _announce(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for event in events:
        if event.get("event") == "env":
            changed = [*event.get("set", []), *(f"-{k}" for k in event.get("unset", []))]
            print(f"-----> {event['app']}: env {' '.join(changed)}", flush=True)
        elif event.get("event") == "result" and event.get("ok") and not event.get("restarted"):
            print("       not restarted: the containers get it at the next deploy or restart")
        yield event


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    def cmd_env(args: argparse.Namespace) -> int:
        words: list[str] = args.words
        client = client_factory(args)
        if words[0] not in VERBS:
            if len(words) != 1:
                raise DockyardError("usage: dockyard env APP [--show] | env get|set|unset APP ...")
            rows = client.get(f"/v1/apps/{words[0]}/env?show={'1' if args.show else '0'}")
            if args.json:
                render.print_json(rows)
            else:
                print(listing(rows, args.show))
            return EXIT_OK
        verb, rest = words[0], words[1:]
        if not rest:
            raise DockyardError(f"usage: dockyard env {verb} APP ...")
        app, items = rest[0], rest[1:]
        if verb == "get":
            if len(items) != 1:
                raise DockyardError("usage: dockyard env get APP KEY")
            rows = {r["key"]: r for r in client.get(f"/v1/apps/{app}/env?show=1")}
            if items[0] not in rows:
                print(f"dockyard: app {app!r} has no env var {items[0]}", file=sys.stderr)
                return EXIT_FAIL
            print(rows[items[0]]["value"])
            return EXIT_OK
        if not items:
            raise DockyardError(f"usage: dockyard env {verb} APP {'KEY=VALUE' if verb == 'set' else 'KEY'} ...")
        body: dict[str, Any] = {"restart": not args.no_restart}
        if verb == "set":
            body["set"] = parse_assignments(items)
        else:
            body["unset"] = list(dict.fromkeys(items))
        return follow(_announce(client.stream(f"/v1/apps/{app}/env", body)))

    p = add_command(sub, common, "env", cmd_env,
                    "an app's environment: env APP [--show] | env get APP KEY | "
                    "env set APP KEY=VALUE... | env unset APP KEY... (set/unset restart the app)")
    p.add_argument("words", nargs="+", metavar="APP | get|set|unset APP ...")
    p.add_argument("--show", action="store_true", help="show the values (masked by default)")
    p.add_argument("--no-restart", action="store_true",
                   help="change the overlay only; the containers get it at the next deploy or restart")
    p.add_argument("--json", action="store_true")
