"""The isolation scenario (issue 19): does the supervisor's own work reach the requests?

    python -m bench isolation [--workers 0,2] [--rate 1000] [--deploys 10] [--cron-runs 20]
                              [--cron-kib 1024] [--push-mib 20] [--app busybox|py|nginx] [--out DIR]

For each `workers` value (0 = the proxy in the supervisor's process, as before issue 19), one
`dockyard serve` with two apps: `bench` takes a fixed open-loop load (bench/load.py) the whole
time; `other` and `pushed` are the work. After `lead` seconds of steady load, three threads
run at once: `--deploys` deploys of `other` (alternating two image tags), `--cron-runs` manual
runs of a cron task of `other` that prints `--cron-kib` KiB each (`dockyard cron run`, which
streams the output through the daemon), and a `git push` of app `pushed` whose Dockerfile's
RUN step prints `--push-mib` MiB (the build output streams through the daemon to the pusher),
built and deployed by the daemon. The report compares the p99 (and max) of the requests sent
during the work with those sent in the steady lead; errors are counted in both.

A second, light load (`--probe-rate`, 100 req/s, one keep-alive connection) asks the proxy for a
host it does not route: the proxy answers that 404 itself, so its latency is the data plane's
own, without the app's container behind it ("proxy alone" columns). Where the two differ, the
requests waited on the app (its container, docker-proxy), not on the proxy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .load import LoadResult
from .swap import DOCKYARD, HOST, REPO, Bench, SwapOptions, log, startup_check, wait_http
from .throughput import free_port

OTHER = "other"
PUSHED = "pushed"
LINE = "x" * 99  # + newline: 100 bytes a line


def percentile(values: list[float], q: float) -> float:
    ok = sorted(v for v in values if not math.isnan(v))
    if not ok:
        return float("nan")
    return ok[min(len(ok) - 1, int(q / 100 * len(ok)))]


class ProxyProbe(threading.Thread):
    """Open-loop GETs for an unrouted host at `rate` on one keep-alive connection: the proxy's
    own 404. Latency is timed from each request's due time (a stall delays the next ones, and
    their lateness is counted in them)."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.period = port, 1.0 / rate
        self.samples: list[tuple[float, float]] = []  # (due, latency ms); NaN: failed
        self.stop_at = float("inf")

    def run(self) -> None:
        request = b"GET / HTTP/1.1\r\nHost: no-app.invalid\r\n\r\n"
        sock: socket.socket | None = None
        due = time.monotonic()
        while due < self.stop_at:
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                sock.sendall(request)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    head += chunk
                top, _, body = head.partition(b"\r\n\r\n")
                length = next(int(v) for k, _, v in (line.partition(b":") for line in top.split(b"\r\n"))
                              if k.lower() == b"content-length")
                while len(body) < length:
                    body += sock.recv(65536)
                self.samples.append((due, (time.monotonic() - due) * 1000))
            except (OSError, StopIteration, ValueError):
                self.samples.append((due, float("nan")))
                if sock is not None:
                    sock.close()
                sock = None
            due += self.period


class IsolationBench(Bench):
    def __init__(self, opts: SwapOptions, args: argparse.Namespace) -> None:
        super().__init__(opts)
        self.args = args

    def config_for(self, port: int, workers: int) -> Path:
        path = self.write_config(port)
        text = path.read_text()
        lines = self.args.cron_kib * 1024 // 100
        cron = f"i=0; while [ $i -lt {lines} ]; do echo {LINE}; i=$((i+1)); done"
        text = text.replace("[apps.bench]", f"[proxy]\nworkers = {workers}\n\n[apps.bench]", 1)
        network = "host" if self.opts.app == "nginx" else "bridge"  # the nginx image listens on 127.0.0.1
        text += f"""
[apps.{OTHER}]
image = "{self.tags[0]}"
hosts = ["{OTHER}.localhost"]
port = 5000
network = "{network}"
retire_after = 0
stop_timeout = 2
{startup_check(OTHER)}
[[apps.{OTHER}.cron]]
id = "big"
command = "{cron}"
schedule = "@yearly"

[apps.{PUSHED}]
build = "git"
hosts = ["{PUSHED}.localhost"]
port = 5000
network = "{network}"
retire_after = 0
stop_timeout = 2
{startup_check(PUSHED)}"""
        path = self.tmp / f"dockyard-w{workers}.toml"
        path.write_text(text)
        return path

    def cli(self, config: Path, *args: str) -> tuple[int, int]:
        """Run `dockyard ARGS`; return (exit code, bytes of output read)."""
        proc = subprocess.run([DOCKYARD, *args, "-c", str(config)], cwd=REPO, capture_output=True)
        return proc.returncode, len(proc.stdout) + len(proc.stderr)

    def push(self, config: Path, workers: int) -> tuple[int, int]:
        """`git push` of app `pushed`: a Dockerfile on the bench image whose RUN prints
        `--push-mib` MiB; (exit code, bytes the pusher read)."""
        from supervisor.config.loader import load_config
        from supervisor.git.repo import repo_path

        work = self.tmp / f"push-w{workers}"
        work.mkdir(parents=True, exist_ok=True)
        size = self.args.push_mib << 20
        # A line of its own per push: Docker's build cache would otherwise replay the step silently.
        line = f"{LINE[:80]}-{os.getpid()}-{workers}-{time.time_ns()}"
        (work / "Dockerfile").write_text(f"FROM {self.tags[0]}\nRUN yes {line} | head -c {size}\n")
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
        for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "noisy build"]):
            subprocess.run(["git", *cmd], cwd=work, env=env, check=True, capture_output=True)
        remote = repo_path(load_config(config), PUSHED)
        # Forced: each `--workers` run pushes a new history to the same repository (`git push -f`).
        proc = subprocess.run(["git", "push", str(remote), "+HEAD:main"], cwd=work, env=env, capture_output=True)
        if proc.returncode:
            log(f"git push failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        return proc.returncode, len(proc.stdout) + len(proc.stderr)

    def run_one(self, workers: int) -> dict[str, Any]:
        a = self.args
        port = free_port()
        config = self.config_for(port, workers)
        with open(self.out / f"daemon-w{workers}.log", "wb") as daemon_log:
            self.daemon = subprocess.Popen([DOCKYARD, "serve", "-c", str(config)], cwd=REPO,
                                           stdout=subprocess.DEVNULL, stderr=daemon_log)
        wait_http(port, "/", HOST, 90, daemon=self.daemon)
        wait_http(port, "/", f"{OTHER}.localhost", 90, daemon=self.daemon)
        self.start_load(port, a.lead + 600)
        probe = ProxyProbe(port, a.probe_rate)
        probe.start()
        time.sleep(a.lead)
        work_start = time.monotonic()
        outcomes: dict[str, list[Any]] = {"deploys": [], "cron": [], "push": []}

        def deploys() -> None:
            for i in range(a.deploys):
                outcomes["deploys"].append(self.cli(config, "deploy", OTHER, "--image", self.tags[(i + 1) % 2])[0])

        def crons() -> None:
            for _ in range(a.cron_runs):
                outcomes["cron"].append(self.cli(config, "cron", "run", OTHER, "big"))

        def push() -> None:
            if a.push_mib:
                outcomes["push"].append(self.push(config, workers))

        threads = [threading.Thread(target=f) for f in (deploys, crons, push)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        work_end = time.monotonic()
        assert self.load is not None
        self.load.end_at(work_end + a.tail)
        result = self.finish_load()
        probe.stop_at = work_end + a.tail
        probe.join(30)
        self.daemon.terminate()
        self.daemon.wait(30)
        self.daemon = None
        for c in self.client.containers.list(all=True, filters={"label": f"dockyard.instance={self.instance}"}):
            c.remove(force=True)
        return summarize(workers, result, work_start, work_end, outcomes, probe.samples)


def summarize(workers: int, r: LoadResult, start: float, end: float, outcomes: dict[str, list[Any]],
              probe: list[tuple[float, float]]) -> dict[str, Any]:
    steady = [lat for due, lat in zip(r.due, r.latency_ms, strict=True) if due < start]
    work = [lat for due, lat in zip(r.due, r.latency_ms, strict=True) if start <= due <= end]
    failed_steady = sum(1 for due, o in zip(r.due, r.outcome, strict=True) if due < start and o != "ok")
    failed_work = sum(1 for due, o in zip(r.due, r.outcome, strict=True) if start <= due <= end and o != "ok")
    s = {
        "workers": workers, "requests": r.requests, "rate": round(r.achieved_rate()),
        "work_seconds": round(end - start, 1),
        "steady_p50": percentile(steady, 50), "steady_p99": percentile(steady, 99),
        "steady_max": max((v for v in steady if not math.isnan(v)), default=float("nan")),
        "work_p50": percentile(work, 50), "work_p99": percentile(work, 99),
        "work_max": max((v for v in work if not math.isnan(v)), default=float("nan")),
        "failed_steady": failed_steady, "failed_work": failed_work,
        "deploys_ok": sum(1 for c in outcomes["deploys"] if c == 0), "deploys": len(outcomes["deploys"]),
        "cron_ok": sum(1 for c, _ in outcomes["cron"] if c == 0), "cron_runs": len(outcomes["cron"]),
        "cron_output_mib": round(sum(n for _, n in outcomes["cron"]) / (1 << 20), 1),
        "push_ok": sum(1 for c, _ in outcomes["push"] if c == 0), "pushes": len(outcomes["push"]),
        "push_output_mib": round(sum(n for _, n in outcomes["push"]) / (1 << 20), 1),
    }
    s["ratio_p99"] = s["work_p99"] / s["steady_p99"] if s["steady_p99"] else float("nan")
    alone_steady = [lat for due, lat in probe if due < start]
    alone_work = [lat for due, lat in probe if start <= due <= end]
    s.update({
        "alone_steady_p99": percentile(alone_steady, 99), "alone_work_p99": percentile(alone_work, 99),
        "alone_work_max": max((v for v in alone_work if not math.isnan(v)), default=float("nan")),
        "alone_failed": sum(1 for _, lat in probe if math.isnan(lat)),
    })
    return s


def alone_failed(s: dict[str, Any]) -> str:
    return f" ({s['alone_failed']} failed)" if s["alone_failed"] else ""


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    out = [f"Command: `{command}`", "",
           "| workers | steady p50 / p99 / max ms | work p50 / p99 / max ms | work p99 / steady p99 | "
           "failed (steady / work) | proxy alone: steady p99 / work p99 / max ms | deploys ok "
           "| cron runs ok (output) | git push ok (output) |",
           "| --- | --- | --- | ---: | --- | --- | --- | --- | --- |"]
    for s in rows:
        out.append(
            f"| {s['workers']}{' (in-process)' if s['workers'] == 0 else ''} "
            f"| {s['steady_p50']:.2f} / {s['steady_p99']:.2f} / {s['steady_max']:.1f} "
            f"| {s['work_p50']:.2f} / {s['work_p99']:.2f} / {s['work_max']:.1f} | **{s['ratio_p99']:.2f}** "
            f"| {s['failed_steady']} / {s['failed_work']} "
            f"| {s['alone_steady_p99']:.2f} / {s['alone_work_p99']:.2f} / {s['alone_work_max']:.1f}"
            f"{alone_failed(s)} "
            f"| {s['deploys_ok']}/{s['deploys']} "
            f"| {s['cron_ok']}/{s['cron_runs']} ({s['cron_output_mib']} MiB) "
            f"| {s['push_ok']}/{s['pushes']} ({s['push_output_mib']} MiB) |")
    out.append(f"\nload: {rows[0]['rate']} req/s achieved; work lasted "
               + ", ".join(f"{s['work_seconds']} s (workers={s['workers']})" for s in rows))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench isolation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="0,2", help="comma-separated [proxy] workers values to compare")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--deploys", type=int, default=10)
    p.add_argument("--cron-runs", type=int, default=20)
    p.add_argument("--cron-kib", type=int, default=1024)
    p.add_argument("--push-mib", type=int, default=20, help="MiB the pushed build prints (0: no push)")
    p.add_argument("--lead", type=float, default=8.0, help="seconds of steady load before the work")
    p.add_argument("--tail", type=float, default=2.0)
    p.add_argument("--app", choices=("busybox", "py", "nginx"), default="busybox")
    p.add_argument("--probe-rate", type=float, default=100.0, help="req/s of the proxy-alone probe")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    opts = SwapOptions(rate=args.rate, app=args.app, out=args.out, retire_after=0.0)
    bench = IsolationBench(opts, args)
    bench.out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        log(f"building images into {bench.out}")
        bench.build_images()
        for n in (int(w) for w in args.workers.split(",")):
            log(f"workers={n}: {args.lead:g} s steady, then {args.deploys} deploys + {args.cron_runs} cron runs")
            rows.append(bench.run_one(n))
    finally:
        bench.close()
        if not opts.keep_images:
            bench.remove_images()
    command = "python -m bench isolation " + " ".join(argv)
    text = markdown(rows, command.strip())
    (bench.out / "isolation.md").write_text(text + "\n")
    (bench.out / "isolation.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0 if all(s["failed_work"] == 0 and s["failed_steady"] == 0 for s in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
