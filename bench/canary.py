"""python -m bench canary: how exactly a canary gets its share, and how fast a bad one goes.

Two phases against the busybox fixture app on real Docker, with the proxy and the supervisor in
this process (as `dockyard serve` runs them) and open-loop load from worker processes
(supervisor/cli/loadtest/generator.py; no cookie is kept, so every request is a fresh draw):

1. share: release v2 as a canary at PERCENT beside v1; once the proxy has counted REQUESTS
   requests of the app since the canary began, it is promoted by hand. The share is the
   canary's requests over all of them, from the proxy's counters per release.
2. bad canary: v3 answering 500 for 30 % of its requests (ERROR_PERCENT=30) as a canary at
   PERCENT; the time from the first 5xx the proxy counts for it to the route change that gives
   its share back (the rollback), and to the end of the deploy (drained and removed).

Prints a markdown report; writes summary.json to --out (default bench/out/canary-<stamp>).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from proxy import Proxy, ProxyOptions
from supervisor.cli.loadtest.generator import LoadRun, Target
from supervisor.config.loader import parse_config
from supervisor.deploy.flow import deploy
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.spec import CanarySpec
from supervisor.runtime.docker import DockerRuntime
from supervisor.store.releases import StateStore

from .images import build_app_image

BENCH_LABEL = "dockyard.bench"
APP = "bench"
HOST = "bench.localhost"
TAG = "dockyard-bench-canary:{}"


class LabellingRuntime(DockerRuntime):
    async def run(self, spec: Any) -> Any:  # type: ignore[override]
        labels = {**spec.labels, BENCH_LABEL: "canary"}
        return await super().run(dataclasses.replace(spec, labels=labels))


def config(state_dir: Path) -> Any:
    return parse_config({
        "server": {"state_dir": str(state_dir), "instance": f"bench-canary-{int(time.time())}"},
        "apps": {APP: {"image": TAG.format("v1"), "hosts": [HOST], "retire_after": 0, "stop_timeout": 2,
                       "drain_timeout": 5, "processes": {"web": {"scale": 2}},
                       "healthchecks": {"web": [{"type": "startup", "name": "health", "path": "/health",
                                                 "content": "ok", "attempts": 5, "timeout": 2, "wait": 0.5}]}}},
    }, state_dir / "dockyard.toml")


def _count(stats: dict[str, Any], release: str) -> tuple[int, int]:
    s = stats.get(release) or {}
    return int(s.get("requests", 0)), int((s.get("status") or {}).get("5xx", 0))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import docker

    client = docker.from_env(timeout=60)
    for version in ("v1", "v2", "v3"):
        build_app_image(TAG.format(version), version, labels={BENCH_LABEL: "canary"}, client=client)
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-canary-"))
    cfg = config(tmp / "state")
    state = StateStore(cfg.server.state_dir)
    proxy = Proxy(ProxyOptions())
    await proxy.start("127.0.0.1", 0)
    runtime = LabellingRuntime(client)
    sup = Supervisor(cfg, runtime, proxy, state)
    summary: dict[str, Any] = {"rate": args.rate, "percent": args.percent, "requests_wanted": args.requests}
    load = LoadRun(Target(port=proxy.port, host_header=HOST), args.rate, 600.0, timeout=5.0)
    try:
        first = await sup.deploy(APP)
        assert first.ok, first.reason
        await asyncio.to_thread(load.start)
        await asyncio.sleep(1.0)

        # 1. the share
        spec = CanarySpec(percent=args.percent, window=3600)
        events: list[dict[str, Any]] = []
        task = asyncio.ensure_future(sup.deploy(APP, TAG.format("v2"), events.append, spec))
        while not any(e.get("status") == "start" for e in events if e["event"] == "canary"):
            await asyncio.sleep(0.01)
        base = proxy.release_stats(APP)
        started = time.monotonic()
        while True:
            now = proxy.release_stats(APP)
            total = sum(_count(now, r)[0] - _count(base, r)[0] for r in now)
            if total >= args.requests:
                break
            await asyncio.sleep(0.01)
        seconds = time.monotonic() - started
        sup.decide_canary(APP, "promote")
        report = await task
        promote = next(e for e in events if e.get("status") == "promote")
        new, old = promote["canary"]["requests"], promote["serving"]["requests"]
        summary["share"] = {"canary": new, "serving": old, "share_percent": round(100 * new / (new + old), 2),
                            "seconds": round(seconds, 2), "promoted": report.ok}
        await asyncio.sleep(1.0)

        # 2. the bad canary
        app = sup.app(APP)
        bad = dataclasses.replace(app, env={**app.env, "ERROR_PERCENT": "30"})
        bad_spec = CanarySpec(percent=args.percent, window=120)
        events.clear()
        stamps: dict[str, float] = {}

        def progress(event: Any) -> None:  # called as each event is emitted: the rollback's moment
            events.append(dict(event))
            if event.get("status") in ("rollback", "promote"):
                stamps[event["status"]] = time.monotonic()

        task = asyncio.ensure_future(deploy(sup.ctx, bad, TAG.format("v3"), progress=progress, canary=bad_spec))
        while not any(e.get("status") == "start" for e in events if e["event"] == "canary"):
            await asyncio.sleep(0.001)
        release = str(next(e for e in events if e["event"] == "canary")["release"])
        first_error = 0.0
        while not task.done():
            if not first_error and _count(proxy.release_stats(APP), release)[1] > 0:
                first_error = time.monotonic()
            await asyncio.sleep(0.002)
        report = task.result()
        await sup.retirer.wait_idle()  # drained, stopped and removed
        done = time.monotonic()
        routed_back = stamps.get("rollback", 0.0)  # the route change is made just before this event
        rollback = next((e for e in events if e.get("status") == "rollback"), {})
        summary["bad"] = {
            "rolled_back": not report.ok, "reason": report.reason,
            "first_error_to_route_back_s": round(routed_back - first_error, 3) if routed_back and first_error else None,
            "first_error_to_deploy_end_s": round(done - first_error, 3) if first_error else None,
            "canary_requests_at_decision": (rollback.get("canary") or {}).get("requests"),
            "canary_errors_at_decision": (rollback.get("canary") or {}).get("errors"),
            "min_requests": bad_spec.min_requests,
        }
        await asyncio.sleep(1.0)
        load.end_at(time.monotonic())
        result = await asyncio.to_thread(load.join)
        summary["load"] = {"requests": result.requests, "achieved_rate": round(result.achieved_rate(), 1),
                           "errors": result.errors()}
    finally:
        load.stop()
        await sup.retirer.close()
        await proxy.stop(1.0)
        for info in await runtime.list({"dockyard.instance": cfg.server.instance}):
            await runtime.remove(info.id)
        state.close()
        if not args.keep_images:
            for version in ("v1", "v2", "v3"):
                try:
                    client.images.remove(TAG.format(version), force=True)
                except Exception:  # noqa: BLE001 - best effort
                    pass
    return summary


def markdown(summary: dict[str, Any], command: str) -> str:
    share, bad, load = summary["share"], summary["bad"], summary["load"]
    return "\n".join([
        f"Command: `{command}`",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| asked share | {summary['percent']:g} % |",
        f"| routed to the canary | {share['share_percent']:.2f} % ({share['canary']:,} of "
        f"{share['canary'] + share['serving']:,} requests in {share['seconds']:.1f} s) |",
        f"| bad canary (30 % 5xx): first 5xx to its share routed back | "
        f"{bad['first_error_to_route_back_s'] if bad['first_error_to_route_back_s'] is not None else '-'} s |",
        f"| ... to its containers drained and removed | {bad['first_error_to_deploy_end_s']} s |",
        f"| canary requests / 5xx when it was decided | {bad['canary_requests_at_decision']} / "
        f"{bad['canary_errors_at_decision']} (min_requests {bad['min_requests']}) |",
        f"| load: requests, achieved rate | {load['requests']:,}, {load['achieved_rate']:,.0f} req/s |",
        f"| load: failed requests by kind | {', '.join(f'{k} {v}' for k, v in load['errors'].items())} |",
        "",
    ])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench canary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second (default 1000)")
    parser.add_argument("--percent", type=float, default=10.0, help="the canary's share (default 10)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests counted for the share")
    parser.add_argument("--keep-images", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    summary = asyncio.run(run(args))
    command = shlex.join(["python", "-m", "bench", "canary", *argv])
    text = markdown(summary, command)
    print(text)
    out = args.out or Path(__file__).resolve().parent / "out" / f"canary-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(text)
    print(f"written to {out}", file=sys.stderr)
    ok = summary["share"]["promoted"] and summary["bad"]["rolled_back"] and \
        abs(summary["share"]["share_percent"] - args.percent) <= 2
    return 0 if ok else 1
