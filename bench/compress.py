"""Compression cost: req/s and the proxy's CPU per MB compressed, per coding, driven by wrk.

Run: python -m bench.compress [--duration 5] [--size 65536] [--connections 20]

nginx (1 worker) serves one JSON document of `--size` bytes; our proxy (a subprocess, compiled
when built) routes to it with `compress = true`. wrk asks for it with each Accept-Encoding in
turn (identity: not compressed, the baseline). The proxy's CPU time comes from
/proc/PID/stat; "CPU ms/MB" is that time over the uncompressed megabytes served.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.throughput import WRK, free_port, start_nginx, start_ours, stop, wait_port

STATIC_BODY = """
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {root}; default_type application/json; }}
    }}
"""
CODINGS = ("identity", "gzip", "br", "zstd")


def document(size: int) -> bytes:
    """JSON that compresses like an API answer: repeated keys, varied values."""
    rows = []
    i = 0
    while sum(len(r) for r in rows) < size:
        rows.append(json.dumps({"id": i, "name": f"user-{i * 7919 % 10007}", "email": f"u{i}@example.com",
                                "active": i % 3 == 0, "score": (i * 2654435761) % 1000 / 10}))
        i += 1
    return ("[" + ",".join(rows) + "]").encode()[:size]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_rps(port: int, duration: float, connections: int, coding: str) -> float:
    out = subprocess.run([WRK, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
                          "-H", f"Accept-Encoding: {coding}", f"http://127.0.0.1:{port}/doc.json"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def compressed_size(port: int, coding: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/doc.json", headers={"Accept-Encoding": coding})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return len(resp.read())


def run(duration: float, size: int, connections: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        root = Path(tmp) / "www"
        root.mkdir()
        (root / "doc.json").write_bytes(document(size))
        backend, ours = free_port(), free_port()
        procs = [start_nginx(Path(tmp) / "backend", STATIC_BODY.format(port=backend, root=root)),
                 start_ours(ours, backend, policy='{"compress": true}')]
        try:
            wait_port(backend)
            wait_port(ours)
            rows = []
            for coding in CODINGS:
                wrk_rps(ours, 1, connections, coding)  # warm up
                before, t0 = cpu_seconds(procs[1].pid), time.monotonic()
                rps = wrk_rps(ours, duration, connections, coding)
                cpu = cpu_seconds(procs[1].pid) - before
                served_mb = rps * (time.monotonic() - t0) * size / 1e6
                rows.append({"coding": coding, "rps": rps, "bytes": compressed_size(ours, coding),
                             "cpu_ms_per_mb": 1000 * cpu / served_mb if served_mb else float("nan"),
                             "cpu_share": cpu / (time.monotonic() - t0)})
            return rows
        finally:
            for proc in reversed(procs):
                stop(proc)


def markdown(rows: list[dict[str, Any]], size: int) -> str:
    lines = [f"| Accept-Encoding | req/s | bytes sent (of {size}) | proxy CPU ms per MB served |",
             "| --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['coding']} | {r['rps']:.0f} | {r['bytes']} | {r['cpu_ms_per_mb']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compress", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args(argv)
    print(markdown(run(args.duration, args.size, args.connections), args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
