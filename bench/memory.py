"""Proxy memory: 1,000 idle keep-alive client connections, and a 1 GiB upload and download.

    python -m bench.memory [--connections 1000] [--gib 1] [--policy '{}']

Our proxy runs in its own process (bench.throughput's launcher) in front of an aiohttp backend
(another process) that streams N bytes out on GET /big and counts and discards POST /sink.
RSS comes from /proc/PID/status: VmRSS before and after, and VmHWM (the peak) for the bodies,
its peak reset (`/proc/PID/clear_refs`) just before each body, so each figure is the peak
during that body over the RSS just before it.
With `--workers N` the proxy is N worker processes driven by a WorkerPool (as `dockyard serve`
runs it; the pool's own process stands in for the supervisor) and RSS is summed over all of them.
Goals (issue 3): idle connections <= 80 MB RSS in all; each 1 GiB body raises RSS < 32 MB.
`--policy '{}'` gives the app the supervisor's default policy (issue 21): the upload is then
buffered whole by the proxy (1 MiB in memory, the rest in a temporary file) before it goes to
the app, and the same < 32 MB goal holds for it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import time
from typing import Any

from .throughput import free_port, start_ours, start_pool, stop, wait_port

CHUNK = 256 * 1024


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (the proxy workers of a pool)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            for child in fh.read().split():
                pids += _tree(int(child))
    except OSError:
        pass
    return pids


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """Summed over `pid` and its children."""
    total = 0
    for one in _tree(pid):
        with open(f"/proc/{one}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


def reset_peak(pid: int) -> None:
    """Set VmHWM back to the current VmRSS, for `pid` and its children (Linux >= 4.0; a no-op
    where refused)."""
    for one in _tree(pid):
        try:
            with open(f"/proc/{one}/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass


def body_peak_kb(pid: int, send: Any) -> tuple[int, Any]:
    """(peak RSS rise in kB while `send()` runs, what it returned): VmHWM after it over VmRSS
    before it, with the peak reset in between (without the reset: the larger of both peaks)."""
    before = rss_kb(pid)
    reset_peak(pid)
    result = send()
    return rss_kb(pid, "VmHWM") - before, result


def _backend(port: int) -> None:
    from aiohttp import web

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("bytes", "0"))
        resp = web.StreamResponse(headers={"Content-Length": str(size)})
        await resp.prepare(request)
        chunk = b"x" * CHUNK
        sent = 0
        while sent < size:
            part = chunk[: min(CHUNK, size - sent)]
            await resp.write(part)
            sent += len(part)
        await resp.write_eof()
        return resp

    async def sink(request: web.Request) -> web.Response:
        total = 0
        async for data in request.content.iter_chunked(CHUNK):
            total += len(data)
        return web.Response(text=str(total))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=0)
    app.router.add_get("/big", big)
    app.router.add_post("/sink", sink)
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """Open `count` keep-alive connections, each after one request, then leave them idle."""
    socks = []
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("the proxy closed a keep-alive connection")
            data += chunk
        socks.append(s)
    return socks


async def _download(port: int, size: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /big?bytes={size} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0], head[:100]
    got = 0
    while got < size:
        data = await reader.read(CHUNK)
        if not data:
            break
        got += len(data)
    writer.close()
    return got


async def upload(port: int, size: int) -> int:
    """POST `size` bytes to /sink (Content-Length), 256 KiB at a time; the count the app read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /sink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode()
    )
    chunk = b"y" * CHUNK
    sent = 0
    while sent < size:
        part = chunk[: min(CHUNK, size - sent)]
        writer.write(part)
        await writer.drain()
        sent += len(part)
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.read(100)
    writer.close()
    assert b" 200 " in head.split(b"\r\n", 1)[0], head[:100]
    return int(body.strip() or b"0")


def pss_kb(pid: int) -> int:
    """Proportional set size summed over `pid` and its children: shared pages (the interpreter,
    the compiled proxy, libssl) counted once over all of them, which RSS counts in each."""
    total = 0
    for one in _tree(pid):
        with open(f"/proc/{one}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def run_memory(connections: int = 1000, gib: float = 1.0, policy: str | None = None,
               workers: int = 0) -> dict[str, Any]:
    backend_port, proxy_port = free_port(), free_port()
    backend = multiprocessing.Process(target=_backend, args=(backend_port,), daemon=True)
    backend.start()
    proxy = start_pool(proxy_port, backend_port, workers) if workers else start_ours(proxy_port, backend_port, policy=policy)
    result: dict[str, Any] = {"connections": connections, "bytes": int(gib * (1 << 30)), "workers": workers,
                              "policy": policy}
    try:
        wait_port(backend_port)
        wait_port(proxy_port)
        time.sleep(1.0 if workers else 0)  # the workers start after the port is bound
        idle_connections(proxy_port, 5)  # warm up imports and pools
        base = rss_kb(proxy.pid)
        socks = idle_connections(proxy_port, connections)
        time.sleep(0.5)
        result["idle_rss_mb"] = round(rss_kb(proxy.pid) / 1024, 1)
        result["idle_added_mb"] = round((rss_kb(proxy.pid) - base) / 1024, 1)
        result["idle_pss_mb"] = round(pss_kb(proxy.pid) / 1024, 1)
        result["processes"] = len(_tree(proxy.pid))
        for s in socks:
            s.close()
        time.sleep(0.5)
        size = result["bytes"]
        start = time.monotonic()
        peak, got = body_peak_kb(proxy.pid, lambda: asyncio.run(_download(proxy_port, size)))
        result["download_seconds"] = round(time.monotonic() - start, 2)
        result["download_ok"] = got == size
        result["download_peak_added_mb"] = round(peak / 1024, 1)
        start = time.monotonic()
        peak, counted = body_peak_kb(proxy.pid, lambda: asyncio.run(upload(proxy_port, size)))
        result["upload_seconds"] = round(time.monotonic() - start, 2)
        result["upload_ok"] = counted == size
        result["upload_peak_added_mb"] = round(peak / 1024, 1)
        result["baseline_rss_mb"] = round(base / 1024, 1)
    finally:
        stop(proxy)
        backend.terminate()
        backend.join(5)
    return result


def markdown(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| measure | value | goal |",
            "| --- | ---: | --- |",
            f"| proxy RSS, baseline ({'workers=' + str(r['workers']) + ', all processes' if r['workers'] else 'in-process'})"
            f" | {r['baseline_rss_mb']} MB | |",
            f"| proxy RSS with {r['connections']} idle keep-alive connections | {r['idle_rss_mb']} MB "
            f"(+{r['idle_added_mb']} MB) | <= 80 MB |",
            f"| the same as PSS (shared pages counted once), {r['processes']} process(es) | {r['idle_pss_mb']} MB | |",
            f"| peak RSS rise, {r['bytes'] >> 20} MiB download ({r['download_seconds']} s, "
            f"complete: {r['download_ok']}) | +{r['download_peak_added_mb']} MB | < 32 MB |",
            f"| peak RSS rise, {r['bytes'] >> 20} MiB upload{' (buffered: policy ' + r['policy'] + ')' if r['policy'] else ''} ({r['upload_seconds']} s, "
            f"complete: {r['upload_ok']}) | +{r['upload_peak_added_mb']} MB | < 32 MB |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--policy", metavar="JSON", help="the app's policy (proxy.policy.Policy.from_dict); '{}': the default, which buffers uploads")
    parser.add_argument("--workers", type=int, default=0, help="N proxy worker processes (0: one proxy process)")
    args = parser.parse_args(argv)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1000), hard))
    if args.policy is not None and args.workers:
        parser.error("--policy is for the in-process proxy (--workers 0)")
    result = run_memory(args.connections, args.gib, args.policy, args.workers)
    print(markdown(result))
    return 0 if result["download_ok"] and result["upload_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
