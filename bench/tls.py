"""HTTPS throughput with keep-alive: nginx terminating TLS vs dockyard's proxy, driven by wrk.

Run: python -m bench.tls [--duration 5] [--connections 50] [--rounds 2]

One backend (nginx `return 200`, 1 worker, plain HTTP) on 127.0.0.1, as in bench/throughput.py.
In front of it, over HTTPS with the same trustme certificate (issued for 127.0.0.1/localhost):
nginx (1 worker, `listen ssl`, upstream keepalive) and our `proxy.Proxy` with `start_tls` and a
`proxy.tls.CertStore` (a subprocess on uvloop). wrk -t1 -c50 keeps its connections alive, so
this measures TLS record processing, not handshakes. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .throughput import (
    BACKEND_BODY,
    free_port,
    serve_until_signal,
    start_nginx,
    stop,
    wait_port,
    wrk,
)

NGINX_TLS_BODY = """
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
"""
HOSTS = ("127.0.0.1", "localhost")


def write_certificate(directory: Path) -> tuple[str, str]:
    """A trustme CA's leaf certificate (chain) and key for HOSTS, as PEM files."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(*HOSTS)
    cert, key = directory / "cert.pem", directory / "key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return str(cert), str(key)


def start_ours(port: int, backend: int, cert: str, key: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.tls", "--serve-proxy", str(port), f"127.0.0.1:{backend}", cert, key]
    return subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent)


def run_tls(duration: float = 5.0, connections: int = 50, rounds: int = 2) -> dict[str, Any]:
    """Best of `rounds` interleaved wrk runs for each; {"nginx"|"ours": {...}, "ratio": ours/nginx}."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-tls-") as tmp:
        try:
            cert, key = write_certificate(Path(tmp))
            backend, nginx_port, ours_port = free_port(), free_port(), free_port()
            procs.append(start_nginx(Path(tmp) / "backend", BACKEND_BODY.format(port=backend)))
            body = NGINX_TLS_BODY.format(port=nginx_port, backend=backend, cert=cert, key=key)
            procs.append(start_nginx(Path(tmp) / "proxy", body))
            procs.append(start_ours(ours_port, backend, cert, key))
            for port in (backend, nginx_port, ours_port):
                wait_port(port)
            setups = (("nginx", nginx_port), ("ours", ours_port))
            results: dict[str, Any] = {}
            for _, port in setups:
                wrk(port, 1, connections, scheme="https")  # warm up: handshakes, pools
            for _ in range(max(1, rounds)):
                for name, port in setups:
                    r = wrk(port, duration, connections, scheme="https")
                    if name not in results or r["rps"] > results[name]["rps"]:
                        results[name] = r
            results["ratio"] = results["ours"]["rps"] / results["nginx"]["rps"]
            results.update(duration=duration, connections=connections, rounds=rounds)
            return results
        finally:
            for proc in reversed(procs):
                stop(proc)


def markdown(results: dict[str, Any]) -> str:
    lines = ["| setup (HTTPS, keep-alive) | req/s | p50 ms | p99 ms | non-2xx |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in ("nginx", "ours"):
        r = results[name]
        lines.append(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']:.0f} |")
    lines.append(f"\nours/nginx = **{results['ratio']:.2f}** (wrk -t1 -c{results['connections']} "
                 f"-d{results['duration']:g}s https://127.0.0.1:PORT/, best of {results['rounds']})")
    return "\n".join(lines)


def serve_proxy(port: int, target: str, cert: str, key: str) -> None:
    """Child process: our proxy on uvloop, TLS only, one app for HOSTS routed to `target`."""
    import uvloop

    from proxy import Proxy, ProxyOptions
    from proxy.tls import CertStore

    async def main() -> None:
        proxy = Proxy(ProxyOptions())
        proxy.set_app("bench", list(HOSTS), [target])
        store = CertStore(default="bench")  # wrk sends the IP as SNI; the default answers it
        store.install("bench", HOSTS, cert, key)
        await proxy.start("127.0.0.1", free_port())
        await proxy.start_tls("127.0.0.1", port, store)
        await serve_until_signal(proxy)

    uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve-proxy", nargs=4, metavar=("PORT", "TARGET", "CERT", "KEY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_proxy:
        port, target, cert, key = args.serve_proxy
        serve_proxy(int(port), target, cert, key)
        return 0
    print(markdown(run_tls(args.duration, args.connections, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
