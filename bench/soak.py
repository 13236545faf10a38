"""python -m bench.soak --minutes N: does anything grow while dockyard runs for a long time?

One `dockyard serve` with one app (2 web containers of the busybox fixture app) under a steady
open-loop load through the proxy; meanwhile a deploy every `--deploy-every` seconds (each under
a new image tag, so image retention is exercised), a cron task every minute (`* * * * *`), and
a config reload (SIGHUP) every minute that adds or removes a host alias. Every `--sample`
seconds it records the RSS and open fds of the daemon and its child processes, the size of the
SQLite files in state_dir, and the containers and images of this run on the engine.

Writes summary.json, samples.csv and, when matplotlib is importable (the `bench` extra),
soak.png to bench/out/soak-<stamp>/ (or --out). Exit status 0 when no request failed and
every deploy succeeded. Run it for >= 30 minutes for a note in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .images import build_app_image

REPO = Path(__file__).resolve().parent.parent
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
HOST = "soak.localhost"
ALIAS = "alias.soak.localhost"


@dataclass
class Sample:
    t: float  # seconds since the start
    rss_mb: float  # daemon + children
    fds: int
    sqlite_kb: float  # the *.db files in state_dir
    wal_kb: float  # their write-ahead logs (reused after each checkpoint: bounded, ~4 MB each)
    containers: int  # of this run's instance, any state
    images: int  # tags of this run's repository
    requests: int
    failed: int
    deploys: int
    reloads: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return found


def rss_and_fds(pid: int) -> tuple[float, int]:
    rss_kb, fds = 0, 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return rss_kb / 1024, fds


def write_config(path: Path, port: int, instance: str, image: str, alias: bool) -> None:
    hosts = f'"{HOST}", "{ALIAS}"' if alias else f'"{HOST}"'
    path.write_text(f"""[server]
listen = "127.0.0.1:{port}"
state_dir = "state"
instance = "{instance}"

[apps.web]
image = "{image}"
hosts = [{hosts}]
retire_after = 0
stop_timeout = 2
drain_timeout = 5

[apps.web.processes.web]
scale = 2

[[apps.web.healthchecks.web]]
path = "/health"
attempts = 10
wait = 0.5

[[apps.web.cron]]
id = "tick"
schedule = "* * * * *"
command = "echo tick"
""")


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        import docker

        self.args = args
        self.client = docker.from_env(timeout=60)
        self.sampling = docker.from_env(timeout=30)  # its own connection: the sampler's thread
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out: Path = args.out or REPO / "bench" / "out" / f"soak-{stamp}"
        self.out.mkdir(parents=True, exist_ok=True)
        self.instance = f"soak-{stamp}"
        self.repo = f"dockyard-soak-{stamp}".lower()
        self.labels = {"dockyard.bench": self.instance}
        self.port = free_port()
        self.config = self.out / "dockyard.toml"
        self.requests = self.failed = self.deploys = self.deploy_failures = self.reloads = 0
        self.errors: list[str] = []
        self.samples: list[Sample] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = time.monotonic()

    # the pieces ------------------------------------------------------------------------
    def prepare(self) -> None:
        for version in ("v1", "v2"):
            build_app_image(f"{self.repo}-base:{version}", version, labels=self.labels,
                            client=self.client)
        self.tag(0)
        write_config(self.config, self.port, self.instance, f"{self.repo}:0", alias=False)

    def tag(self, n: int) -> str:
        base = self.client.images.get(f"{self.repo}-base:{'v1' if n % 2 == 0 else 'v2'}")
        base.tag(self.repo, str(n))
        return f"{self.repo}:{n}"

    def start(self) -> None:
        log = open(self.out / "daemon.log", "ab")
        self.proc = subprocess.Popen([DOCKYARD, "serve", "-c", str(self.config)], cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/", headers={"Host": HOST}) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit("the app never answered; see daemon.log")

    async def load(self, stop: asyncio.Event) -> None:
        interval = 1.0 / self.args.rate
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async def one() -> None:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/", headers={"Host": HOST}) as r:
                        await r.read()
                        ok = r.status == 200
                        why = f"status {r.status}"
                except Exception as exc:
                    ok, why = False, f"{exc.__class__.__name__}: {exc}"
                self.requests += 1
                if not ok:
                    self.failed += 1
                    if len(self.errors) < 50:
                        self.errors.append(f"{time.monotonic() - self.started:.1f}s {why}")

            pending: set[asyncio.Task[None]] = set()
            next_at = time.monotonic()
            while not stop.is_set():
                task = asyncio.ensure_future(one())
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending)

    async def deploys_loop(self, stop: asyncio.Event) -> None:
        """A deploy starts every `deploy_every` seconds (back to back if one takes longer)."""
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            next_at += self.args.deploy_every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic())
            n += 1
            image = await asyncio.to_thread(self.tag, n)
            done = await asyncio.to_thread(subprocess.run, [
                DOCKYARD, "deploy", "web", "--image", image, "-c", str(self.config)],
                capture_output=True, text=True)
            self.deploys += 1
            if done.returncode != 0:
                self.deploy_failures += 1
                self.errors.append(f"deploy {image} failed: {done.stdout[-300:]}{done.stderr[-300:]}")

    async def reloads_loop(self, stop: asyncio.Event) -> None:
        alias = False
        while not stop.is_set():
            await asyncio.sleep(60)
            alias = not alias
            write_config(self.config, self.port, self.instance, f"{self.repo}:0", alias=alias)
            assert self.proc is not None
            self.proc.send_signal(signal.SIGHUP)
            self.reloads += 1

    def sample(self) -> Sample:
        assert self.proc is not None
        rss, fds = rss_and_fds(self.proc.pid)
        state = self.out / "state"
        sqlite_kb = sum(p.stat().st_size for p in state.glob("*.db")) / 1024
        wal_kb = sum(p.stat().st_size for p in state.glob("*.db-wal")) / 1024
        try:
            containers = len(self.sampling.containers.list(
                all=True, filters={"label": f"dockyard.instance={self.instance}"}))
            images = sum(1 for i in self.sampling.images.list(name=self.repo) for t in i.tags
                         if t.startswith(f"{self.repo}:"))
        except Exception as exc:  # a slow engine: the last counts again
            print(f"sample: docker did not answer ({exc.__class__.__name__})", flush=True)
            last = self.samples[-1] if self.samples else None
            containers, images = (last.containers, last.images) if last else (-1, -1)
        return Sample(round(time.monotonic() - self.started, 1), round(rss, 1), fds,
                      round(sqlite_kb, 1), round(wal_kb, 1), containers, images, self.requests,
                      self.failed, self.deploys, self.reloads)

    async def sampler(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            s = await asyncio.to_thread(self.sample)
            self.samples.append(s)
            print(f"t={s.t:6.0f}s rss={s.rss_mb:6.1f}MB fds={s.fds:4d} sqlite={s.sqlite_kb:7.1f}KB "
                  f"wal={s.wal_kb:7.1f}KB "
                  f"containers={s.containers} images={s.images} requests={s.requests} "
                  f"failed={s.failed} deploys={s.deploys} reloads={s.reloads}", flush=True)
            try:
                await asyncio.wait_for(stop.wait(), self.args.sample)
            except TimeoutError:
                pass

    async def run(self) -> dict[str, Any]:
        self.prepare()
        self.start()
        await self.wait_ready()
        self.started = time.monotonic()
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(c) for c in (
            self.load(stop), self.deploys_loop(stop), self.reloads_loop(stop), self.sampler(stop))]
        await asyncio.sleep(self.args.minutes * 60)
        stop.set()
        for task in tasks[1:3]:  # a deploy in flight finishes; the sleeps are cut short
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.samples.append(await asyncio.to_thread(self.sample))
        return self.summary()

    def summary(self) -> dict[str, Any]:
        warm = [s for s in self.samples if s.t >= min(120.0, self.args.minutes * 30)] or self.samples
        def growth(field: str) -> float:
            return round(getattr(warm[-1], field) - getattr(warm[0], field), 1)
        return {
            "minutes": self.args.minutes, "rate": self.args.rate, "requests": self.requests,
            "failed": self.failed, "deploys": self.deploys, "deploy_failures": self.deploy_failures,
            "reloads": self.reloads, "errors": self.errors[:20],
            "after_warmup": {f: {"first": getattr(warm[0], f), "last": getattr(warm[-1], f),
                                 "max": max(getattr(s, f) for s in warm), "growth": growth(f)}
                             for f in ("rss_mb", "fds", "sqlite_kb", "wal_kb", "containers", "images")},
        }

    def write(self, summary: dict[str, Any]) -> None:
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        with open(self.out / "samples.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(asdict(self.samples[0])))
            writer.writeheader()
            writer.writerows(asdict(s) for s in self.samples)
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib not installed (pip install -e '.[bench]'): no soak.png")
            return
        fields = [("rss_mb", "RSS, MB (daemon + children)"), ("fds", "open fds"),
                  ("sqlite_kb", "SQLite databases, KB"), ("wal_kb", "SQLite WAL files, KB"),
                  ("containers", "containers"),
                  ("images", "image tags")]
        fig, axes = plt.subplots(len(fields), 1, figsize=(9, 12), sharex=True)
        minutes = [s.t / 60 for s in self.samples]
        for ax, (field, label) in zip(axes, fields, strict=True):
            ax.plot(minutes, [getattr(s, field) for s in self.samples])
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel("minutes")
        fig.suptitle(f"dockyard soak: {summary['requests']} requests, {summary['failed']} failed, "
                     f"{summary['deploys']} deploys, {summary['reloads']} reloads")
        fig.tight_layout()
        fig.savefig(self.out / "soak.png", dpi=90)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for c in self.client.containers.list(
                all=True, filters={"label": f"dockyard.instance={self.instance}"}):
            c.remove(force=True)
        for image in self.client.images.list(name=self.repo) + self.client.images.list(
                name=f"{self.repo}-base"):
            for t in image.tags:
                try:
                    self.client.images.remove(t)
                except Exception:
                    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    parser.add_argument("--deploy-every", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, help="output directory (default bench/out/soak-<stamp>)")
    args = parser.parse_args(argv)
    soak = Soak(args)
    try:
        summary = asyncio.run(soak.run())
        soak.write(summary)
    finally:
        soak.close()
    print(json.dumps(summary, indent=2))
    print(f"written to {soak.out}")
    return 0 if summary["failed"] == 0 and summary["deploy_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
