"""Proxy saturation throughput: direct vs nginx proxy vs dockyard's proxy, driven by wrk.

Run: python -m bench.throughput [--duration 5] [--connections 50] [--policy JSON] [--workers 1,2]

`--policy '{"allow": ["127.0.0.0/8"]}'` adds a setup "ours+policy": the same proxy with that
per-app policy (proxy/policy.py, `Policy.from_dict`), measured in the same interleaved rounds.

One backend (nginx `return 200`, 1 worker) on 127.0.0.1 is served three ways:
direct, through nginx as a proxy (1 worker, upstream keepalive) and through our Proxy
(a subprocess on uvloop). Prints a markdown table with req/s, p50, p99 and ours/nginx.
With `--workers 1,2`, also nginx with `worker_processes N` ("nginx-wN") against our proxy in N
worker processes as `dockyard serve` runs it (`WorkerPool`, "ours-wN"), for each N.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"

NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    {body}
}}
"""

BACKEND_BODY = """
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ return 200 "hello from the backend\\n"; }}
    }}
"""

PROXY_BODY = """
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start_nginx(prefix: Path, body: str, workers: int = 1) -> subprocess.Popen[bytes]:
    prefix.mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, body=body, user=user, workers=workers))
    return subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.DEVNULL)


def start_ours(port: int, backend: int, *, pure: bool = False, policy: str | None = None) -> subprocess.Popen[bytes]:
    """Our proxy in a child process; `pure` forces the pure-Python modules (proxy/compiled.py)."""
    cmd = [sys.executable, "-m", "bench.throughput", "--serve-proxy", str(port), f"127.0.0.1:{backend}"]
    if policy is not None:
        cmd += ["--policy", policy]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, DOCKYARD_NO_EXTENSIONS="1") if pure else None
    return subprocess.Popen(cmd, cwd=root, env=env)


def start_pool(port: int, backend: int, workers: int) -> subprocess.Popen[bytes]:
    """Our proxy in `workers` worker processes, driven by a WorkerPool as `dockyard serve` does."""
    cmd = [sys.executable, "-m", "bench.throughput", "--serve-pool", str(port), f"127.0.0.1:{backend}", str(workers)]
    return subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port: int, duration: float, connections: int, scheme: str = "http") -> dict[str, float]:
    out = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = re.search(r"(\d+) requests in", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    def parse(v: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", v)
        return _ms(m.group(1), m.group(2)) if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": parse(lat.get("50", "")),
        "p99_ms": parse(lat.get("99", "")),
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_throughput(duration: float = 5.0, connections: int = 50, rounds: int = 2,
                   policy: str | None = None, workers: tuple[int, ...] = ()) -> dict[str, Any]:
    """Measure the setups; returns {"direct"|"nginx"|"ours"[|"ours-pure"]: {...}, "ratio": ours/nginx}.

    "ours" is the proxy as `dockyard serve` would import it: compiled when built (proxy/compiled.py).
    When it is, "ours-pure" measures the pure-Python modules in the same run. The setups are
    measured in `rounds` interleaved rounds and the best round of each is kept, which damps noise
    from other load on the machine.
    """
    from proxy import compiled

    mode = compiled.describe()
    with_pure = compiled.use_extensions()[0]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        try:
            backend, nginx_port, ours_port, pure_port = free_port(), free_port(), free_port(), free_port()
            procs.append(start_nginx(Path(tmp) / "backend", BACKEND_BODY.format(port=backend)))
            procs.append(start_nginx(Path(tmp) / "proxy", PROXY_BODY.format(port=nginx_port, backend=backend)))
            procs.append(start_ours(ours_port, backend))
            setups = [("direct", backend), ("nginx", nginx_port), ("ours", ours_port)]
            pids = {"ours": procs[-1].pid}
            if with_pure and not workers:
                procs.append(start_ours(pure_port, backend, pure=True))
                setups.append(("ours-pure", pure_port))
                pids["ours-pure"] = procs[-1].pid
            if policy is not None:
                policy_port = free_port()
                procs.append(start_ours(policy_port, backend, policy=policy))
                setups.append(("ours+policy", policy_port))
                pids["ours+policy"] = procs[-1].pid
            for n in workers:
                nginx_n, ours_n = free_port(), free_port()
                procs.append(start_nginx(Path(tmp) / f"proxy-w{n}",
                                         PROXY_BODY.format(port=nginx_n, backend=backend), workers=n))
                procs.append(start_pool(ours_n, backend, n))
                setups += [(f"nginx-w{n}", nginx_n), (f"ours-w{n}", ours_n)]
            with_pure = with_pure and not workers
            for _, port in setups:
                wait_port(port)
            results: dict[str, Any] = {}
            rounds_rps: dict[str, list[float]] = {}
            cpu_rounds: dict[str, list[float]] = {}
            for _, port in setups:
                wrk(port, 1, connections)  # warm up pools
            for _ in range(max(1, rounds)):
                for name, port in setups:
                    before = cpu_seconds(pids[name]) if name in pids else 0.0
                    r = wrk(port, duration, connections)
                    if name in pids and r["requests"]:
                        # CPU per request: far less sensitive than req/s to other load on the machine
                        r["cpu_us"] = (cpu_seconds(pids[name]) - before) / r["requests"] * 1e6
                        cpu_rounds.setdefault(name, []).append(r["cpu_us"])
                    rounds_rps.setdefault(name, []).append(r["rps"])
                    if name not in results or r["rps"] > results[name]["rps"]:
                        results[name] = r
            results["ratio"] = results["ours"]["rps"] / results["nginx"]["rps"]
            if policy is not None:
                results["policy"] = policy
                results["ratio_policy"] = results["ours+policy"]["rps"] / results["ours"]["rps"]
            for n in workers:
                results[f"ratio_w{n}"] = results[f"ours-w{n}"]["rps"] / results[f"nginx-w{n}"]["rps"]
            results["workers"] = list(workers)
            if with_pure:
                results["ratio_pure"] = results["ours-pure"]["rps"] / results["nginx"]["rps"]
            results["mode"] = mode
            results["rounds"] = rounds_rps
            results["cpu_us"] = {name: statistics.median(v) for name, v in cpu_rounds.items()}
            results["median_ratio"] = statistics.median(
                o / n for o, n in zip(rounds_rps["ours"], rounds_rps["nginx"], strict=True))
            results["duration"] = duration
            results["connections"] = connections
            return results
        finally:
            for proc in reversed(procs):
                stop(proc)


def markdown(results: dict[str, Any]) -> str:
    lines = ["| setup | req/s | p50 ms | p99 ms | non-2xx |", "| --- | ---: | ---: | ---: | ---: |"]
    extra = [f"{k}-w{n}" for n in results.get("workers", []) for k in ("nginx", "ours")]
    for name in ("direct", "nginx", "ours", "ours-pure", "ours+policy", *extra):
        if name not in results:
            continue
        r = results[name]
        lines.append(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']:.0f} |")
    lines.append(f"\nours/nginx = **{results['ratio']:.2f}** (wrk -t1 -c{results['connections']} -d{results['duration']:g}s;"
                 f" ours: {results.get('mode', '?')})")
    if "rounds" in results:
        lines.append("per round, req/s: " + "; ".join(
            f"{name} " + " ".join(f"{v:.0f}" for v in values) for name, values in results["rounds"].items()))
        lines.append(f"median of the per-round ours/nginx ratios: {results['median_ratio']:.2f}")
    if results.get("cpu_us"):
        lines.append("proxy CPU per request, median of rounds (µs): " + "; ".join(
            f"{name} {v:.1f}" for name, v in results["cpu_us"].items()))
    if "ratio_policy" in results:
        lines.append(f"ours+policy/ours = {results['ratio_policy']:.3f} (policy {results['policy']})")
    for n in results.get("workers", []):
        lines.append(f"workers={n}: ours-w{n}/nginx-w{n} = **{results[f'ratio_w{n}']:.2f}**")
    if "ratio_pure" in results:
        lines.append(f"ours-pure/nginx = {results['ratio_pure']:.2f} (the same proxy with DOCKYARD_NO_EXTENSIONS=1)")
    return "\n".join(lines)


def serve_proxy(port: int, target: str, policy: str | None = None) -> None:
    """Child process: our proxy on uvloop, one app routing 127.0.0.1 and localhost to `target`."""
    import json

    import uvloop

    from proxy import Proxy, ProxyOptions

    async def main() -> None:
        proxy = Proxy(ProxyOptions())
        if policy is None:
            proxy.set_app("bench", ["127.0.0.1", "localhost"], [target])
        else:
            from proxy.policy import Policy

            proxy.set_app("bench", ["127.0.0.1", "localhost"], [target], policy=Policy.from_dict(json.loads(policy)))
        await proxy.start("127.0.0.1", port)
        await serve_until_signal(proxy)

    uvloop.run(main())


def serve_pool(port: int, target: str, workers: int) -> None:
    """Child process: a WorkerPool of `workers` proxy processes, one app routed to `target`."""
    import uvloop

    from proxy import ProxyOptions
    from supervisor.daemon.dataplane import WorkerPool

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="dockyard-bench-workers-") as tmp:
            pool = WorkerPool(ProxyOptions(), workers, Path(tmp))
            await pool.start("127.0.0.1", port)
            pool.set_app("bench", ["127.0.0.1", "localhost"], [target])
            await pool.launch()
            await serve_until_signal(pool)

    uvloop.run(main())


async def serve_until_signal(proxy: Any) -> None:
    """Child processes: serve until SIGTERM or SIGINT, then stop the proxy."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop_event.set)
    loop.add_signal_handler(signal.SIGINT, stop_event.set)
    await stop_event.wait()
    await proxy.stop(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="", help="comma-separated worker counts, e.g. 1,2")
    parser.add_argument("--serve-proxy", nargs=2, metavar=("PORT", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--policy", metavar="JSON", help="also measure the proxy with this per-app policy")
    parser.add_argument("--serve-pool", nargs=3, metavar=("PORT", "TARGET", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_pool:
        serve_pool(int(args.serve_pool[0]), args.serve_pool[1], int(args.serve_pool[2]))
        return 0
    if args.serve_proxy:
        serve_proxy(int(args.serve_proxy[0]), args.serve_proxy[1], args.policy)
        return 0
    workers = tuple(int(n) for n in args.workers.split(",") if n.strip())
    print(markdown(run_throughput(args.duration, args.connections, args.rounds, args.policy, workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
