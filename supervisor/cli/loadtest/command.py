"""`dockyard loadtest APP`: open-loop load through the local proxy while the app is swapped.

The run: check the options and that the app serves; start the load generator's workers; run
the swaps at their times through the control API (swaps.py); end the load once the last
swap's windows are over and the planned duration is reached; write and print the report.

Ctrl-C (SIGINT) only sets a flag: no new swap starts, a swap in flight is read to its end
(the daemon finishes it either way), then the load stops and the report is written; the exit
status is 130. A second Ctrl-C stops waiting at once (the daemon still finishes the deploy).
Exit status otherwise: 0 when no request failed and every swap succeeded, 1 when not.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from supervisor.cli.client import ControlClient
from supervisor.cli.loadtest import DEFAULT_TIMEOUT
from supervisor.cli.loadtest.errors import LoadTestError
from supervisor.cli.render import print_json

if TYPE_CHECKING:
    from supervisor.model.spec import Config

DEFAULT_RATE = 100.0  # req/s
DEFAULT_MAX_RATE = 2000.0  # req/s: above it, --max-rate must be raised on purpose
DEFAULT_DURATION = 60.0  # s
DEFAULT_SWAPS = 3
DEFAULT_OUT = Path("loadtest")  # ./loadtest/<app>-<stamp>/
EXIT_OK, EXIT_FAIL, EXIT_INTERRUPTED = 0, 1, 130
ConfigLoader = Callable[[argparse.Namespace], "Config"]

DESCRIPTION = """\
Send open-loop GET load at --rate req/s to APP through the local proxy listener (the
config's [server] listen; 0.0.0.0 and :: become 127.0.0.1) while performing --swaps
zero-downtime swaps: `restart` by default, or with --image, a deploy of IMAGE and a rollback,
alternately. Reports requests, failures by kind, latency steady vs during the swaps, each
deploy's steps and the achieved rate; writes report.md, summary.json, samples.csv.gz and,
with matplotlib, latency.png to --out. Exit status: 0 when no request failed and every swap
succeeded, 1 otherwise, 130 after Ctrl-C."""


def add_command(sub: Any, common: argparse.ArgumentParser, load: ConfigLoader) -> None:
    p = sub.add_parser("loadtest", parents=[common], help="load-test an app's zero-downtime swaps",
                       description=DESCRIPTION)
    p.set_defaults(func=lambda args: run(args, load(args)))
    p.add_argument("app")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="requests per second (default %(default)g)")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                   help="seconds of load, at least; longer when the swaps need it (default %(default)g)")
    p.add_argument("--swaps", type=int, default=DEFAULT_SWAPS, help="swaps during the load (default %(default)d)")
    p.add_argument("--no-swap", action="store_true", help="no swaps: steady latency at the rate, a baseline")
    p.add_argument("--image", help="swap by deploying IMAGE, then rolling back, alternately")
    p.add_argument("--host", help="Host header (default: the app's first host); must route to APP")
    p.add_argument("--path", action="append", default=[], metavar="P",
                   help="a path to GET (repeatable; default: the app's path prefix)")
    p.add_argument("--paths-file", type=Path, metavar="F",
                   help="paths to GET, one per line (# comments); a path's repeats weigh it")
    p.add_argument("--header", action="append", default=[], metavar="'K: V'", help="an extra header (repeatable)")
    p.add_argument("--max-rate", type=float, default=DEFAULT_MAX_RATE,
                   help="refuse a --rate above this (default %(default)g)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds a request may take before it counts as failed (default %(default)g)")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the report")
    p.add_argument("--out", type=Path, help="output directory (default ./loadtest/APP-STAMP)")


def log(message: str) -> None:
    print(f"loadtest: {message}", file=sys.stderr, flush=True)


def check_options(args: argparse.Namespace) -> int:
    """The number of swaps; LoadTestError for a bad combination."""
    if not args.rate > 0 or not args.duration > 0 or not args.timeout > 0:
        raise LoadTestError("--rate, --duration and --timeout must be positive")
    if args.rate > args.max_rate:
        raise LoadTestError(f"--rate {args.rate:g} is above --max-rate {args.max_rate:g}; "
                            "raise --max-rate to send more")
    if args.no_swap and args.image:
        raise LoadTestError("--no-swap and --image exclude each other")
    swaps = 0 if args.no_swap else args.swaps
    if swaps < 0:
        raise LoadTestError("--swaps must be 0 or more")
    return int(swaps)


def check_serving(client: ControlClient, app: str) -> dict[str, Any]:
    routes = {r.get("app"): r for r in client.get("/v1/routes")}
    row = routes.get(app)
    if not row or not row.get("targets"):
        raise LoadTestError(f"app {app!r} is not serving (no route or no targets): deploy it first")
    return dict(row)


def check_listening(address: str, port: int) -> None:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except OSError as exc:
        raise LoadTestError(f"nothing answers on the proxy listener {address}:{port}: {exc}") from exc


class Interrupt:
    """SIGINT handler: the first sets `stop`, the second raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> Interrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        log("Ctrl-C: stopping; a swap in flight is left to finish (Ctrl-C again to stop waiting)")


def run(args: argparse.Namespace, config: Config, argv: Sequence[str] | None = None) -> int:
    # here, not at the top: every `dockyard` command declares `loadtest`, only this pays for it
    from supervisor.cli.loadtest import report, target
    from supervisor.cli.loadtest.generator import ERROR_KINDS, LoadRun
    from supervisor.cli.loadtest.swaps import RETIRE_WAIT_MAX, Driver

    count = check_options(args)
    tgt = target.resolve(config, args.app, host=args.host, paths=args.path,
                         paths_file=args.paths_file, headers=args.header)
    app = config.apps[args.app]
    client = ControlClient(config.server.control_socket)
    before = check_serving(client, args.app)
    check_listening(tgt.address, tgt.port)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or DEFAULT_OUT / f"{args.app}-{stamp}"
    swaps_text = f"{count} swap{'' if count == 1 else 's'}"
    mode = ("no swaps (baseline)" if count == 0 else
            f"{swaps_text}: deploy {args.image}, then roll back, alternately" if args.image else
            f"{swaps_text} by `dockyard restart`")
    # Upper bound for the workers; the run is ended with end_at() once the swaps are done.
    longest = args.duration + count * (app.deploy_timeout + RETIRE_WAIT_MAX + 10.0) + 10.0
    log(f"{args.rate:g} req/s to {tgt.address}:{tgt.port} (Host: {tgt.host_header}) for "
        f"{args.duration:g} s or more; {mode}; release {before.get('release')} serving")
    interrupted = False
    with Interrupt() as sigint:
        load = LoadRun(tgt, args.rate, longest, timeout=args.timeout)
        try:
            try:
                t0 = load.start()
            except RuntimeError as exc:
                raise LoadTestError(f"the load generator did not start: {exc}") from exc
            driver = Driver(client, args.app, count, image=args.image, retire_after=app.retire_after,
                            stop=sigint.stop, log=log)
            swaps = driver.run(t0, args.duration)
            end = driver.end(t0, args.duration)
            if not sigint.stop.is_set():  # the workers learn the end before they reach it
                load.end_at(end)
            sigint.stop.wait(max(0.0, end - time.monotonic()))
            interrupted = sigint.stop.is_set()
            if interrupted:
                load.end_at(time.monotonic())
            result = load.join()
        except KeyboardInterrupt:
            log("stopped waiting; a deploy in flight goes on in the daemon "
                f"(see `dockyard releases {args.app}`)")
            load.stop()
            return EXIT_INTERRUPTED
        finally:
            load.stop()
    notes = []
    if app.retire_after > RETIRE_WAIT_MAX and count:
        notes.append(f"retire_after is {app.retire_after:g} s: the old containers' retire is not "
                     f"waited for (at most {RETIRE_WAIT_MAX:g} s), so it is not measured.")
    if args.image and driver.on_image:
        notes.append(f"The app is left on {args.image} (an odd number of successful swaps); "
                     f"`dockyard rollback {args.app}` goes back.")
    meta = {
        "app": args.app, "command": _command(argv), "started_at": time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() - (time.monotonic() - t0))),
        "listener": f"{tgt.address}:{tgt.port}", "host": tgt.host_header, "paths": list(tgt.paths),
        "swap_mode": mode, "retire_after": app.retire_after, "out": str(out), "notes": notes,
    }
    summary = report.summarize(result, swaps, planned_swaps=count, interrupted=interrupted, meta=meta)
    text = report.write(summary, result, swaps, out)
    if args.json:
        print_json(summary)
    else:
        sys.stdout.write(text)
    failed = summary["failed"]
    kinds = ", ".join(f"{failed[k]} {k}" for k in ERROR_KINDS if failed[k])
    verdict = "INTERRUPTED" if interrupted else "PASS" if summary["ok"] else "FAIL"
    log(f"{verdict}: {failed['total']} of {summary['requests']} requests failed"
        f"{f' ({kinds})' if kinds else ''}, {summary['swaps']['ok']} of {count} swaps ok; "
        f"report in {out}")
    if not summary["rate"]["kept_up"]:
        log(f"warning: the generator did not keep up ({summary['rate']['achieved']:.0f} of "
            f"{args.rate:g} req/s achieved); try a lower --rate")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary["ok"] else EXIT_FAIL


def _command(argv: Sequence[str] | None) -> str:
    words = list(argv) if argv is not None else ["dockyard", *sys.argv[1:]]
    return shlex.join(words)
