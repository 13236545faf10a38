"""The swap scenario: the same open-loop load at three systems, one after the other.

    direct    straight at one container published on 127.0.0.1 (the floor; no swaps)
    dockyard  `dockyard serve` with a generated config; `dockyard deploy --image` alternating
              between two image tags, K times at fixed intervals while the load runs
    swarm     (`--scheduler swarm`) dockyard again, the app on a one-node Docker Swarm: each deploy
              a new service, its task reached at 127.0.0.1 and a host-mode port (docs/swarm.md);
              an engine not in a swarm is made a manager for the run and leaves it after
    nginx     nginx-light with upstream keepalive; each swap starts a new container, waits for
              /health, rewrites the upstream, `nginx -s reload`, and stops the old container
              after the retire wait (the way Dokku deploys)

The app is the aiohttp fixture (`--app py`, the default: keep-alive, one process, on the cached
debootstrap base image) or the busybox one (`--app busybox`: a process per connection, every
connection closed; `--quick` uses it so CI needs no debootstrap). The same image serves all
three systems.

Every container and image made here carries BENCH_LABEL; the daemon's containers carry its
`dockyard.instance` label. All of them are removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from supervisor.cli.client import ControlClient
from supervisor.cli.loadtest.generator import DEFAULT_TIMEOUT, LoadResult, LoadRun, Target
from supervisor.config.control import control_socket

from . import report
from .images import build_app_image, build_nginx_app_image, build_python_app_image
from .nginx import NginxProxy
from .report import Swap
from .throughput import free_port

BENCH_LABEL = "dockyard.bench"
APP = "bench"
HOST = "bench.localhost"
VERSIONS = ("v1", "v2")
REPO = Path(__file__).resolve().parent.parent
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
SYSTEMS = ("direct", "dockyard", "nginx")
KNOWN_SYSTEMS = (*SYSTEMS, "swarm")  # swarm: dockyard with scheduler = "swarm" (--scheduler swarm)
App = Literal["busybox", "py", "nginx"]
APPS: tuple[App, ...] = ("busybox", "py", "nginx")


def startup_check(app: str) -> str:
    """The TOML of the bench apps' startup check (GET /health answers "ok")."""
    return f"""
[[apps.{app}.healthchecks.web]]
type = "startup"
name = "health"
path = "/health"
content = "ok"
attempts = 50
timeout = 2
wait = 0.1
"""


@dataclass(frozen=True, slots=True)
class SwapOptions:
    rate: float = 1000.0
    swaps: int = 20  # per swapping system (dockyard and nginx)
    interval: float = 2.0
    lead: float = 5.0  # steady load before the first swap
    tail: float = 4.0  # after the last swap's retire
    direct_duration: float = 10.0
    retire_after: float = 1.0
    timeout: float = DEFAULT_TIMEOUT
    workers: int | None = None
    keepalive: bool = True
    saturation: bool = False
    saturation_duration: float = 5.0
    systems: tuple[str, ...] = SYSTEMS
    out: Path | None = None
    keep_images: bool = False
    command: str = "python -m bench swap"
    app: App = "py"
    scheduler: str = "docker"  # "swarm": also run the "swarm" system (dockyard on Swarm)
    proxy_workers: int | None = None  # dockyard's [proxy] workers (None: the default, "auto")
    deploy_via: str = "cli"  # "api": POST the deploy to the control socket, no `dockyard` command
    peer_via: str = "cli"  # nginx's swaps: the `docker` command as Dokku runs it; "sdk": the bench's own client
    labels: Mapping[str, str] = field(default_factory=dict)  # extra labels (the tests add theirs)

    @classmethod
    def quick(cls, **overrides: Any) -> SwapOptions:
        """The CI smoke test: ~20 s of load, generous client timeout for a loaded machine."""
        base: dict[str, Any] = dict(rate=200.0, swaps=3, interval=1.5, lead=2.0, tail=2.0,
                                    direct_duration=2.0, timeout=15.0, saturation_duration=2.0,
                                    app="busybox")
        base.update(overrides)
        return cls(**base)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


class Bench:
    """Owns every resource of a run, so `close()` can remove all of them."""

    def __init__(self, opts: SwapOptions, client: Any = None) -> None:
        import docker

        self.opts = opts
        self.client = client or docker.from_env()
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.instance = f"bench-{self.stamp}-{os.getpid()}"
        self.labels = {BENCH_LABEL: self.instance, **opts.labels}  # containers of this run
        self.image_labels = {BENCH_LABEL: "1", **opts.labels}
        self.tags = tuple(f"dockyard-bench:{self.instance}-{v}" for v in VERSIONS)  # per run
        self.tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
        self.daemon: subprocess.Popen[bytes] | None = None
        self.nginx: NginxProxy | None = None
        self.load: LoadRun | None = None
        self.timers: list[threading.Thread] = []
        self.extra: dict[str, dict[str, Any]] = {}  # per system, merged into its summary
        self.made_swarm = False  # this run ran `docker swarm init`: it leaves the swarm at the end
        self.out = opts.out or REPO / "bench" / "out" / self.stamp

    # ---- containers ----------------------------------------------------------------------

    def build_images(self) -> None:
        build = {"py": build_python_app_image, "nginx": build_nginx_app_image}.get(self.opts.app, build_app_image)
        for tag, version in zip(self.tags, VERSIONS, strict=True):
            build(tag, version, labels=self.image_labels, client=self.client)

    def remove_images(self) -> None:
        """Remove this run's image tags (the layers stay cached for the next build)."""
        for tag in self.tags:
            try:
                self.client.images.remove(tag)
            except Exception as exc:
                log(f"kept image {tag}: {exc}")

    def run_container(self, tag: str) -> tuple[Any, int]:
        if self.opts.app == "nginx":  # host networking, as dockyard runs it (network = "host")
            port = free_port()
            container = self.client.containers.run(
                tag, detach=True, labels=self.labels, network_mode="host", environment={"PORT": str(port)},
                name=f"dockyard-bench-{self.stamp}-{time.monotonic_ns() % 10**9}",
            )
            wait_http(port, "/health", "127.0.0.1", 30)
            return container, port
        container = self.client.containers.run(
            tag, detach=True, labels=self.labels, ports={"5000/tcp": ("127.0.0.1", None)},
            name=f"dockyard-bench-{self.stamp}-{time.monotonic_ns() % 10**9}",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            container.reload()
            bindings = (container.ports or {}).get("5000/tcp")
            if bindings:
                port = int(bindings[0]["HostPort"])
                wait_http(port, "/health", "127.0.0.1", deadline - time.monotonic())
                return container, port
            time.sleep(0.02)
        raise RuntimeError(f"container {container.short_id} published no port")

    def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def close(self) -> None:
        if self.load is not None:
            self.load.stop()
        for t in self.timers:
            t.join(10)
        if self.nginx is not None:
            self.nginx.close()
        self.stop_daemon()
        if self.opts.scheduler == "swarm":
            self.leave_swarm()
        for key in (BENCH_LABEL, "dockyard.instance"):
            for c in self.client.containers.list(all=True, filters={"label": f"{key}={self.instance}"}):
                try:
                    c.remove(force=True)
                except Exception as exc:  # keep cleaning the rest
                    log(f"could not remove container {c.short_id}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the three systems ---------------------------------------------------------------

    def start_load(self, port: int, duration: float) -> LoadRun:
        o = self.opts
        self.load = LoadRun(Target(port, HOST), o.rate, duration, workers=o.workers,
                            timeout=o.timeout, keepalive=o.keepalive)
        self.load.start()
        return self.load

    def finish_load(self) -> LoadResult:
        assert self.load is not None
        result = self.load.join()
        self.load = None
        return result

    def run_direct(self) -> tuple[LoadResult, list[Swap]]:
        container, port = self.run_container(self.tags[0])
        try:
            self.start_load(port, self.opts.direct_duration)
            return self.finish_load(), []
        finally:
            container.remove(force=True)

    def max_duration(self) -> float:
        """An upper bound for a swapping run; it ends `tail` s after the last retire (end_load)."""
        o = self.opts
        return o.lead + o.swaps * (o.interval + 30.0) + o.retire_after + o.tail + 30.0

    def end_load(self) -> LoadResult:
        assert self.load is not None
        self.load.end_at(time.monotonic() + self.opts.retire_after + 1.0 + self.opts.tail)
        return self.finish_load()

    def run_swarm(self) -> tuple[LoadResult, list[Swap]]:
        """dockyard with the app on Swarm: the same load and swaps as run_dockyard."""
        state = (self.client.info().get("Swarm") or {})
        if state.get("LocalNodeState") != "active":
            self.client.swarm.init(advertise_addr="127.0.0.1")
            self.made_swarm = True
        return self.run_dockyard(scheduler="swarm")

    def leave_swarm(self) -> None:
        """Remove this run's services; leave the swarm when this run made it."""
        with contextlib.suppress(Exception):
            for service in self.client.services.list(filters={"label": f"dockyard.instance={self.instance}-swarm"}):
                service.remove()
        if self.made_swarm:
            with contextlib.suppress(Exception):
                self.client.swarm.leave(force=True)
            self.made_swarm = False

    def run_dockyard(self, scheduler: str = "docker") -> tuple[LoadResult, list[Swap]]:
        self.stop_daemon()
        port = free_port()
        config = self.write_config(port, scheduler)
        with open(self.out / "dockyard-daemon.log", "wb") as daemon_log:  # kept for diagnosis
            self.daemon = subprocess.Popen(
                [DOCKYARD, "serve", "-c", str(config)], cwd=REPO,
                stdout=subprocess.DEVNULL, stderr=daemon_log,
            )
        wait_http(port, "/", HOST, 60, daemon=self.daemon)
        run = self.start_load(port, self.max_duration())

        def swap(i: int) -> Swap:
            return self.dockyard_deploy(config, self.tags[(i + 1) % 2])

        swaps = drive_swaps(run.t0, self.opts, swap)
        return self.end_load(), swaps

    def write_config(self, port: int, scheduler: str = "docker") -> Path:
        o = self.opts
        suffix = "" if scheduler == "docker" else f"-{scheduler}"
        path = self.tmp / f"dockyard{suffix}.toml"
        proxy = "" if o.proxy_workers is None else f"\n[proxy]\nworkers = {o.proxy_workers}\n"
        path.write_text(f"""\
[server]
listen = "127.0.0.1:{port}"
state_dir = "{self.tmp / f'state{suffix}'}"
instance = "{self.instance}{suffix}"
{proxy}
[apps.{APP}]
image = "{self.tags[0]}"
scheduler = "{scheduler}"
hosts = ["{HOST}"]
port = 5000
network = "{'host' if o.app == 'nginx' else 'bridge'}"
retire_after = {o.retire_after}
stop_timeout = 5
drain_timeout = 5

[apps.{APP}.processes.web]
scale = 1
{startup_check(APP)}""")
        return path

    def dockyard_deploy(self, config: Path, tag: str) -> Swap:
        if self.opts.deploy_via == "api":
            return self.api_deploy(config, tag)
        started = time.monotonic()
        swapped = float("nan")
        proc = subprocess.Popen(
            [DOCKYARD, "deploy", APP, "--image", tag, "-c", str(config)], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            if "swap done" in line:
                swapped = time.monotonic()
            lines.append(line.rstrip())
        code = proc.wait()
        ok = code == 0 and swapped == swapped
        return Swap(started, swapped, time.monotonic(), ok, "" if ok else " | ".join(lines[-3:]))

    def api_deploy(self, config: Path, tag: str) -> Swap:
        """The deploy as a POST on the control socket from this process (`--deploy-via api`):
        what the daemon's swap costs without a `dockyard` command starting beside it."""
        started = time.monotonic()
        swapped = float("nan")
        lines = []
        try:
            for event in ControlClient(control_socket(config)).stream(f"/v1/apps/{APP}/deploy", {"image": tag}):
                if event.get("event") == "step" and event.get("step") == "swap" and event.get("status") == "done":
                    swapped = time.monotonic()
                lines.append(str(event))
                if event.get("event") == "result":
                    ok = bool(event.get("ok")) and swapped == swapped
                    return Swap(started, swapped, time.monotonic(), ok, "" if ok else " | ".join(lines[-3:]))
        except Exception as exc:  # noqa: BLE001 - a failed swap is reported, not raised
            lines.append(repr(exc))
        return Swap(started, swapped, time.monotonic(), False, " | ".join(lines[-3:]))

    def run_nginx(self) -> tuple[LoadResult, list[Swap]]:
        port = free_port()
        current, upstream = self.run_container(self.tags[0])
        self.nginx = NginxProxy(self.tmp / "nginx", port)
        self.nginx.start(upstream)
        wait_http(port, "/", HOST, 30)
        run = self.start_load(port, self.max_duration())
        state = {"current": current}

        def swap(i: int) -> Swap:
            started = time.monotonic()
            try:
                tag = self.tags[(i + 1) % 2]
                new, new_port = self.run_container_cli(tag) if self.opts.peer_via == "cli" else self.run_container(tag)
                assert self.nginx is not None
                swapped = self.nginx.swap(new_port)
            except Exception as exc:
                return Swap(started, float("nan"), time.monotonic(), False, repr(exc))
            old, state["current"] = state["current"], new
            retire = threading.Thread(target=self.retire, args=(old,), daemon=True)
            retire.start()
            self.timers.append(retire)
            return Swap(started, swapped, time.monotonic(), True)

        swaps = drive_swaps(run.t0, self.opts, swap)
        result = self.end_load()
        self.nginx.close()
        self.nginx = None
        return result, swaps

    def retire(self, container: Any) -> None:
        """Dokku's retire: wait, then stop (SIGTERM, SIGKILL after the timeout) and remove; with
        `docker stop` and `docker rm` for a container `run_container_cli` started."""
        time.sleep(self.opts.retire_after)
        try:
            if isinstance(container, str):
                docker_command("stop", "--time", "5", container)
                docker_command("rm", "--force", container)
                return
            container.stop(timeout=5)
            container.remove(force=True)
        except Exception as exc:
            log(f"retiring {container if isinstance(container, str) else container.short_id}: {exc}")

    def run_container_cli(self, tag: str) -> tuple[str, int]:
        """The Dokku way of starting the new container: `docker run` (a process of its own, as
        the `dockyard deploy` it is compared with), on a port chosen here; (its id, the port)."""
        port = free_port()
        net = ["--network", "host", "--env", f"PORT={port}"] if self.opts.app == "nginx" else \
            ["--publish", f"127.0.0.1:{port}:5000"]
        labels = [f"--label={k}={v}" for k, v in self.labels.items()]
        name = f"dockyard-bench-{self.stamp}-{time.monotonic_ns() % 10**9}"
        cid = docker_command("run", "--detach", "--name", name, *labels, *net, tag)
        wait_http(port, "/health", "127.0.0.1", 30)
        return cid, port


def docker_command(*args: str) -> str:
    """Run the `docker` command (what Dokku's scripts do); its output, stripped."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def drive_swaps(t0: float, opts: SwapOptions, swap: Callable[[int], Swap]) -> list[Swap]:
    """Run swap(i) at t0 + lead + i * interval (later if the previous one overran)."""
    swaps = []
    for i in range(opts.swaps):
        delay = t0 + opts.lead + i * opts.interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s = swap(i)
        if not s.ok:
            log(f"swap {i + 1} failed: {s.detail}")
        swaps.append(s)
    return swaps


def wait_http(port: int, path: str, host: str, timeout: float,
              daemon: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + max(timeout, 0.1)
    last = ""
    while time.monotonic() < deadline:
        if daemon is not None and daemon.poll() is not None:
            raise RuntimeError(f"dockyard serve exited with {daemon.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return
            last = f"status {resp.status}"
        except OSError as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.05)
    raise RuntimeError(f"127.0.0.1:{port}{path} not ready: {last}")


def run_swap_bench(opts: SwapOptions, client: Any = None) -> dict[str, Any]:
    """Run the scenario; write summary.json, report.md and PNGs to `opts.out`; return the summary."""
    return run_scenario(Bench(opts, client), "swap")


def run_scenario(bench: Bench, scenario: str, **summarize_options: Any) -> dict[str, Any]:
    """Build the images, run `bench`'s systems one after the other under the same load, summarize.

    `bench.run_<system>()` returns the load result and the disruptions (swaps or restarts).
    """
    opts = bench.opts
    out = bench.out
    out.mkdir(parents=True, exist_ok=True)
    systems: list[dict[str, Any]] = []
    plots: list[str] = []
    load_before = os.getloadavg()[0]
    summary: dict[str, Any] = {}
    try:
        log(f"building images (app {opts.app})")
        bench.build_images()
        for name in opts.systems:
            log(f"{name}: {opts.rate:g} req/s")
            result, swaps = getattr(bench, f"run_{name}")()
            busy_after = opts.retire_after + 1.0
            s = report.summarize(name, result, swaps, busy_after, **summarize_options)
            s.update(bench.extra.pop(name, {}))
            systems.append(s)
            log(f"{name}: {s['requests']} requests, {s['errors']['total']} failed, "
                f"{s['achieved_rate']:.0f} req/s achieved, {scenario}s {s['swaps']['ok']}/{s['swaps']['planned']}")
            report.write_samples(result, out / f"{name}-samples.csv.gz")
            if report.plot(name, result, swaps, out / f"{name}.png"):
                plots.append(f"{name}.png")
        saturation = None
        if opts.saturation:
            from .throughput import run_throughput

            log("saturation (wrk)")
            saturation = run_throughput(opts.saturation_duration, 50)
        summary = {
            "meta": {
                "scenario": scenario,
                "stamp": bench.stamp, "instance": bench.instance, "command": opts.command, "machine": machine(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                **{k: v for k, v in asdict(opts).items() if k not in ("out", "labels")},
                "windows": report.window_text(scenario),
                "plots": plots, "out": str(out),
                "loadavg_1min": {"before": load_before, "after": os.getloadavg()[0]},
            },
            "systems": systems,
            "saturation": saturation,
        }
        report.write_json(summary, out / "summary.json")
        (out / "report.md").write_text(report.markdown(summary))
        return summary
    finally:
        bench.close()
        if not opts.keep_images:
            bench.remove_images()
