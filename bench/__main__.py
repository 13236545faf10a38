"""python -m bench swap [--quick] [--saturation] [--app py|busybox] [--rate R] [--swaps K] [--out DIR]
python -m bench restart [--quick] [--app py|busybox] [--rate R] [--restarts K] [--out DIR]
python -m bench isolation [--workers 0,2] [--rate R] [--deploys K] [--cron-runs N] (bench/isolation.py)
python -m bench canary [--rate R] [--percent P] [--requests N] [--out DIR]

swap: request latency during swaps, direct / dockyard / nginx under the same open-loop load
(see bench/swap.py). restart: the same load while dockyard replaces itself with
`dockyard serve --takeover`, next to `nginx -s reload` with an unchanged conf (bench/restart.py).
canary: the share a canary really gets, and how fast a bad one is rolled back (bench/canary.py).
Prints the markdown report; writes summary.json, report.md and, when matplotlib is importable
(the `bench` extra), one PNG per system to bench/out/<stamp>/ or --out.
Exit status: 0 when dockyard failed no request and every swap (restart) succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from .swap import APPS, KNOWN_SYSTEMS, SYSTEMS, SwapOptions, run_swap_bench


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("swap", help="latency during swaps: direct / dockyard / nginx")
    p.add_argument("--quick", action="store_true", help="CI smoke test: 200 req/s, 3 swaps, busybox app, ~20 s")
    p.add_argument("--saturation", action="store_true", help="add the wrk saturation table")
    p.add_argument("--swaps", type=int, help="swaps per swapping system (default 20; quick 3)")
    p.add_argument("--interval", type=float, help="seconds between swaps (default 2; quick 1.5)")
    p.add_argument("--scheduler", choices=("docker", "swarm"), default="docker",
                   help="swarm: add the \"swarm\" system, dockyard with the app on a one-node Swarm")
    p.add_argument("--deploy-via", choices=("cli", "api"), default="cli",
                   help="how dockyard's swaps start: the `dockyard deploy` command (the default, as a "
                   "user would), or a POST to the control socket from the bench's own process (no "
                   "command started: the daemon's share of a swap's cost alone)")
    p.add_argument("--peer-via", choices=("cli", "sdk"), default="cli",
                   help="how nginx's swaps start the new container and stop the old: the `docker` "
                   "command, as Dokku does (the default), or the bench's own Docker client (no "
                   "process started: cheaper than the Dokku way)")
    common(p)
    r = sub.add_parser("restart", help="latency while dockyard restarts itself (--takeover) / nginx -s reload")
    r.add_argument("--quick", action="store_true", help="smoke test: 200 req/s, 3 restarts, busybox app")
    r.add_argument("--restarts", dest="swaps", type=int, help="restarts per system (default 10; quick 3)")
    r.add_argument("--interval", type=float, help="at most one restart per S seconds (default 3)")
    common(r)
    return parser


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", choices=APPS, help="fixture app: py (aiohttp, keep-alive; the default), "
                   "busybox (a process per connection; the default with --quick) or nginx (`return 200`, "
                   "FROM scratch, on host networking)")
    p.add_argument("--rate", type=float, help="requests per second (default 1000; quick 200)")
    p.add_argument("--timeout", type=float, help="client timeout per request, s (default 5; quick 15)")
    p.add_argument("--workers", type=int, help="load generator processes (default: 1 per 600 req/s)")
    p.add_argument("--no-keepalive", action="store_true", help="a new client connection per request")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of %(default)s")
    p.add_argument("--proxy-workers", type=int, help="dockyard's [proxy] workers (default: auto; 0: in-process)")
    p.add_argument("--keep-images", action="store_true", help="keep the dockyard-bench images")
    p.add_argument("--out", type=Path, help="output directory (default bench/out/<stamp>)")


def options(args: argparse.Namespace, argv: list[str]) -> SwapOptions:
    overrides: dict[str, Any] = {
        key: value for key, value in (
            ("rate", args.rate), ("swaps", args.swaps), ("interval", args.interval),
            ("timeout", args.timeout), ("workers", args.workers), ("app", args.app),
            ("proxy_workers", args.proxy_workers),
        ) if value is not None
    }
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    scheduler = getattr(args, "scheduler", "docker")
    if scheduler == "swarm" and "swarm" not in systems:
        at = systems.index("dockyard") + 1 if "dockyard" in systems else len(systems)
        systems = (*systems[:at], "swarm", *systems[at:])
    unknown = set(systems) - set(KNOWN_SYSTEMS)
    if unknown:
        raise SystemExit(f"python -m bench: unknown systems {sorted(unknown)}")
    overrides.update(
        saturation=getattr(args, "saturation", False), keepalive=not args.no_keepalive, systems=systems,
        keep_images=args.keep_images, out=args.out, scheduler=scheduler, deploy_via=getattr(args, "deploy_via", "cli"),
        peer_via=getattr(args, "peer_via", "cli"), command=shlex.join(["python", "-m", "bench", *argv]),
    )
    if args.command == "restart":
        from .restart import restart_options

        return restart_options(args.quick, **overrides)
    return SwapOptions.quick(**overrides) if args.quick else SwapOptions(**overrides)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["isolation"]:  # its own options (bench/isolation.py)
        from .isolation import main as isolation

        signal.signal(signal.SIGTERM, _interrupt)
        return isolation(argv[1:])
    if argv[:1] == ["canary"]:
        from .canary import main as canary_main

        return canary_main(argv[1:])
    args = build_parser().parse_args(argv)
    from . import report

    # SIGTERM cleans up like Ctrl-C does (the runner's `finally` removes every container).
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell
        signal.signal(signal.SIGINT, _interrupt)

    from .images import ImageBuildError

    try:
        if args.command == "restart":
            from .restart import run_restart_bench

            summary = run_restart_bench(options(args, argv))
        else:
            summary = run_swap_bench(options(args, argv))
    except ImageBuildError as exc:
        raise SystemExit(f"python -m bench {args.command}: {exc}") from None
    print(report.markdown(summary), end="")
    print(f"\nwritten to {summary['meta']['out']}", file=sys.stderr)
    dockyard = [s for s in summary["systems"] if s["system"] == "dockyard"]
    failed = any(s["errors"]["total"] or s["swaps"]["ok"] < s["swaps"]["planned"] for s in dockyard)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
