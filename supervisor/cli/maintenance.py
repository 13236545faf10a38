"""`dockyard maintenance on|off APP`: the proxy answers 503 for the app (its message, a
Retry-After), containers keep running; `off` serves again at once. Kept across restarts."""

from __future__ import annotations

import argparse

from supervisor.cli.common import ClientFactory, SubParsers, add_command
from supervisor.cli.exits import EXIT_OK


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    def cmd_maintenance(args: argparse.Namespace) -> int:
        body = {"on": args.mode == "on", "message": args.message or "", "retry_after": args.retry_after}
        data = client_factory(args).post(f"/v1/apps/{args.app}/maintenance", body)
        mode = data["maintenance"]
        if mode is None:
            print(f"{data['app']}: maintenance off, serving again")
        else:
            retry = f", Retry-After {mode['retry_after']}s" if mode["retry_after"] is not None else ""
            print(f"{data['app']}: maintenance on (503{retry}); containers keep running")
        return EXIT_OK

    p = add_command(sub, common, "maintenance", cmd_maintenance,
                    "maintenance on APP [--message TEXT] [--retry-after SECONDS] | maintenance off APP")
    p.add_argument("mode", choices=("on", "off"))
    p.add_argument("app")
    p.add_argument("--message", metavar="TEXT", help="what the 503 page says")
    p.add_argument("--retry-after", type=int, metavar="SECONDS", help="the Retry-After header")
