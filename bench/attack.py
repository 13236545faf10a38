"""Flood bench: a normal client's latency while 2,000 hostile connections run (issue #17).

Run: python -m bench.attack [--rate 200] [--duration 15] [--hostile 2000]

One backend (nginx `return 200`, 1 worker) behind our Proxy (a subprocess on uvloop, default
options). A normal client sends `--rate` req/s open-loop on keep-alive connections from
127.0.0.1, first for `--duration` seconds alone, then for `--duration` seconds while a second
process runs `--hostile` hostile connections from 127.0.0.2-127.0.0.9 (loopback addresses, so
the per-address limit applies to the attacker, as it would on the internet), each looping one
kind of attack and reconnecting whenever the proxy closes it:

- slowloris: a request head one header line per second, never finished;
- slow body: a POST with Content-Length: 100000, one byte every 1.5 s;
- upgrade push: a WebSocket head, then as many bytes as the proxy takes;
- pipelining: 20,000 minimal requests in one go, never reading the answers;
- idle: connect and send nothing;
- never reads: GET requests on a connection it never reads from.

Prints a markdown table: requests, failed, p50/p99/max per phase, and what the attackers saw.

`--deploy` runs the whole daemon instead (`dockyard serve` with bench/swap.py's Python app in
Docker) and, 2 s into the flood, `dockyard deploy`s the app's other image: it must succeed, and
the normal client (routed to that app) must see no failure across the swap either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .throughput import BACKEND_BODY, free_port, start_nginx, start_ours, stop, wait_port

KINDS = ("slowloris", "slow_body", "upgrade_push", "pipelining", "idle", "never_reads")
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]


# -- the attacker (a child process) -----------------------------------------------------------------
async def _attack_once(kind: str, port: int, source: str, counts: dict[str, int], stop_at: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    counts["opened"] += 1
    try:
        if kind == "slowloris":
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            while time.monotonic() < stop_at and not reader.at_eof():
                writer.write(b"X-a: b\r\n")
                await writer.drain()
                await asyncio.sleep(1.0)
        elif kind == "slow_body":
            writer.write(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
            while time.monotonic() < stop_at and not reader.at_eof():
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(1.5)
        elif kind == "upgrade_push":
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            chunk = b"x" * 65536
            while time.monotonic() < stop_at:
                writer.write(chunk)
                async with asyncio.timeout(1.0):
                    await writer.drain()
        elif kind == "pipelining":
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" * 20_000)
            async with asyncio.timeout(max(0.0, stop_at - time.monotonic())):
                await writer.drain()
                while await reader.read(65536):  # read slowly what it answers
                    await asyncio.sleep(0.5)
        elif kind == "idle":
            async with asyncio.timeout(max(0.0, stop_at - time.monotonic())):
                await reader.read()
        else:  # never_reads
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" * 64)
            async with asyncio.timeout(max(0.0, stop_at - time.monotonic())):
                await writer.drain()
                while not reader.at_eof():
                    await asyncio.sleep(1.0)
    except (TimeoutError, ConnectionError, OSError, RuntimeError):  # RuntimeError: uvloop, closed transport
        pass
    finally:
        counts["closed"] += 1
        writer.transport.abort()


async def _attacker(kind: str, port: int, source: str, counts: dict[str, int], stop_at: float) -> None:
    while time.monotonic() < stop_at:
        try:
            await _attack_once(kind, port, source, counts, stop_at)
        except (OSError, RuntimeError):
            counts["refused"] += 1
        await asyncio.sleep(0.2)  # then again, as long as the flood lasts


async def attack(port: int, hostile: int, seconds: float, kinds: tuple[str, ...] = KINDS) -> dict[str, int]:
    counts = {"opened": 0, "closed": 0, "refused": 0}
    stop_at = time.monotonic() + seconds
    tasks = [_attacker(kinds[i % len(kinds)], port, SOURCES[i % len(SOURCES)], counts, stop_at)
             for i in range(hostile)]
    await asyncio.gather(*tasks)
    return counts


def serve_attack(port: int, hostile: int, seconds: float, kinds: tuple[str, ...]) -> None:
    import uvloop

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(uvloop.run(attack(port, hostile, seconds, kinds))), flush=True)


# -- the normal client ------------------------------------------------------------------------------------
async def normal_load(port: int, rate: float, seconds: float, host: str = "localhost") -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    failed = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        t0 = time.monotonic()
        try:
            async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": host}) as resp:
                await resp.read()
                if resp.status != 200:
                    failed += 1
                    return
        except (aiohttp.ClientError, TimeoutError):
            failed += 1
            return
        latencies.append(time.monotonic() - t0)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        start = time.monotonic()
        tasks = []
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(session)))
        await asyncio.gather(*tasks)
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else [float("nan")] * 99
    return {"requests": n, "failed": failed, "p50_ms": q[49], "p99_ms": q[98], "max_ms": ms[-1] if ms else float("nan")}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def sampled(coro: Any, pid: int) -> tuple[dict[str, Any], float]:
    """Run `coro`, sampling the RSS of process `pid` every 0.25 s; returns (result, max MiB)."""
    peak = rss_mib(pid)
    task = asyncio.ensure_future(coro)
    while not task.done():
        await asyncio.sleep(0.25)
        peak = max(peak, rss_mib(pid))
    return task.result(), peak


def run_attack(rate: float, duration: float, hostile: int, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    import uvloop

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="dockyard-attack-") as tmp:
        try:
            backend, ours = free_port(), free_port()
            procs.append(start_nginx(Path(tmp) / "backend", BACKEND_BODY.format(port=backend)))
            proxy = start_ours(ours, backend)
            procs.append(proxy)
            wait_port(backend)
            wait_port(ours)
            uvloop.run(normal_load(ours, rate, 2.0))  # warm up
            quiet, quiet["rss_mib"] = uvloop.run(sampled(normal_load(ours, rate, duration), proxy.pid))
            root = Path(__file__).resolve().parent.parent
            attacker = subprocess.Popen(
                [sys.executable, "-m", "bench.attack", "--serve-attack", str(ours), str(hostile), str(duration + 2),
             ",".join(kinds)],
                cwd=root, stdout=subprocess.PIPE,
            )
            time.sleep(2.0)  # let the flood build up
            flood, flood["rss_mib"] = uvloop.run(sampled(normal_load(ours, rate, duration), proxy.pid))
            out, _ = attacker.communicate(timeout=duration + 60)
            counts = json.loads(out.decode().strip().splitlines()[-1])
            return {"quiet": quiet, "flood": flood, "attackers": counts, "hostile": hostile, "rate": rate,
                    "duration": duration, "kinds": kinds}
        finally:
            for proc in reversed(procs):
                stop(proc)


def run_attack_with_deploy(rate: float, duration: float, hostile: int,
                           kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    """The same phases against `dockyard serve`, with a `dockyard deploy` during the flood."""
    import threading

    import uvloop

    from .swap import DOCKYARD, HOST, REPO, Bench, SwapOptions, wait_http

    bench = Bench(SwapOptions(app="py"))
    deploy: dict[str, Any] = {}
    try:
        bench.out.mkdir(parents=True, exist_ok=True)
        bench.build_images()
        port = free_port()
        config = bench.write_config(port)
        with open(bench.out / "attack-daemon.log", "wb") as daemon_log:
            bench.daemon = subprocess.Popen([DOCKYARD, "serve", "-c", str(config)], cwd=REPO,
                                            stdout=subprocess.DEVNULL, stderr=daemon_log)
        wait_http(port, "/", HOST, 60, daemon=bench.daemon)
        pid = bench.daemon.pid
        uvloop.run(normal_load(port, rate, 2.0, HOST))  # warm up
        quiet, quiet["rss_mib"] = uvloop.run(sampled(normal_load(port, rate, duration, HOST), pid))
        attacker = subprocess.Popen(
            [sys.executable, "-m", "bench.attack", "--serve-attack", str(port), str(hostile), str(duration + 2),
             ",".join(kinds)],
            cwd=REPO, stdout=subprocess.PIPE,
        )

        def do_deploy() -> None:
            time.sleep(4.0)  # 2 s into the measured flood
            swap = bench.dockyard_deploy(config, bench.tags[1])
            deploy.update(ok=swap.ok, seconds=swap.finished - swap.started, error=swap.detail)

        thread = threading.Thread(target=do_deploy)
        thread.start()
        time.sleep(2.0)
        flood, flood["rss_mib"] = uvloop.run(sampled(normal_load(port, rate, duration, HOST), pid))
        thread.join(120)
        out, _ = attacker.communicate(timeout=duration + 60)
        counts = json.loads(out.decode().strip().splitlines()[-1])
        return {"quiet": quiet, "flood": flood, "attackers": counts, "hostile": hostile, "rate": rate,
                "duration": duration, "deploy": deploy, "kinds": kinds}
    finally:
        bench.close()
        if not bench.opts.keep_images:
            bench.remove_images()


def markdown(r: dict[str, Any]) -> str:
    lines = ["| phase | requests | failed | p50 ms | p99 ms | max ms | proxy RSS max MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for phase in ("quiet", "flood"):
        x = r[phase]
        lines.append(f"| {phase} | {x['requests']} | {x['failed']} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} "
                     f"| {x['max_ms']:.1f} | {x['rss_mib']:.0f} |")
    a = r["attackers"]
    lines.append(f"\n{r['hostile']} hostile connections ({', '.join(r['kinds'])}): {a['opened']} opened, "
                 f"{a['closed']} closed, {a['refused']} refused at connect; normal client {r['rate']:g} req/s, "
                 f"{r['duration']:g} s per phase")
    if "deploy" in r:
        d = r["deploy"]
        lines.append(f"`dockyard deploy` during the flood: {'succeeded' if d.get('ok') else 'FAILED'}"
                     f" in {d.get('seconds', float('nan')):.1f} s {d.get('error', '')}".rstrip()
                     + " (RSS column: the whole daemon)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--hostile", type=int, default=2000)
    parser.add_argument("--deploy", action="store_true", help="against dockyard serve, with a deploy in the flood")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--serve-attack", nargs=4, metavar=("PORT", "N", "SECONDS", "KINDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_attack:
        serve_attack(int(args.serve_attack[0]), int(args.serve_attack[1]), float(args.serve_attack[2]),
                     tuple(args.serve_attack[3].split(",")))
        return 0
    run = run_attack_with_deploy if args.deploy else run_attack
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {','.join(KINDS)}")
    result = run(args.rate, args.duration, args.hostile, kinds)
    print(markdown(result))
    ok = result["flood"]["failed"] == 0 and result["quiet"]["failed"] == 0
    return 0 if ok and result.get("deploy", {"ok": True}).get("ok") else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
