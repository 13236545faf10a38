"""In-memory stand-ins for the supervisor's two seams, and a Supervisor built on them.

- `FakeRuntime` implements the `Runtime` Protocol (supervisor/runtime/protocol.py) with
  containers in a dict: ids, labels, status, exit codes, published ports, an event stream.
  Knobs script what Docker would do: `fail()` makes the next calls of an operation raise,
  `gate()` holds calls of an operation until the test opens it, `script()` gives containers a
  behaviour (exit at once, answer HTTP), `oneoff()` scripts predeploy/postdeploy results,
  `die()` and `vanish()` crash or remove a container behind dockyard's back, and
  `runs_in_threads` makes a cancelled `run` finish anyway, as DockerRuntime's threads do;
  `unreachable` makes every call fail as when dockerd does not answer.
- Web containers whose behaviour has an `http` handler answer on real sockets on 127.0.0.1
  (one small aiohttp server per container), so the HTTP checks of deploy/checks.py really
  connect; other containers get made-up port numbers nothing listens on.
- `RecordingRoutes` implements `RouteSink` (deploy/fleet.py) and records every call.
- Both write to one `Journal`, so a test can assert the order of route changes and container
  operations (warm, then set_app, then drain, then stop).
- `rig()` builds a real `Supervisor` (real SQLite in a tmp dir) on the two fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal as signals
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.errors import RouteConflictError
from proxy.routes import Route
from supervisor.config.loader import parse_config
from supervisor.deploy.context import Context
from supervisor.deploy.report import DeployReport
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import RuntimeFailure
from supervisor.model.release import Release
from supervisor.model.spec import Config
from supervisor.runtime.builds import BuildRequest
from supervisor.runtime.containers import LABEL_PORT
from supervisor.runtime.group import run_each
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec, OneOffResult, RuntimeEvent
from supervisor.store.releases import StateStore

if TYPE_CHECKING:
    from supervisor.deploy.fleet import RouteSink
    from supervisor.runtime.protocol import Runtime

# journal ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    op: str  # "run", "remove", "kill", "set_app", "drain", ...
    args: tuple[Any, ...]
    at: float  # time.monotonic()


class Journal:
    """The calls made to the fakes, in order (shared by a FakeRuntime and a RecordingRoutes)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def add(self, op: str, *args: Any) -> None:
        self.calls.append(Call(op, args, time.monotonic()))

    def ops(self, *names: str) -> list[tuple[Any, ...]]:
        """(op, *args) of every call, or only of the operations named."""
        return [(c.op, *c.args) for c in self.calls if not names or c.op in names]

    def first(self, op: str, *args: Any) -> int:
        """Position of the first call of `op` whose arguments start with `args`; -1 if none."""
        for i, c in enumerate(self.calls):
            if c.op == op and c.args[: len(args)] == args:
                return i
        return -1

    def when(self, op: str, *args: Any) -> float:
        """time.monotonic() of the first such call (KeyError if none)."""
        i = self.first(op, *args)
        if i < 0:
            raise KeyError((op, args))
        return self.calls[i].at

    def clear(self) -> None:
        self.calls.clear()


async def eventually(condition: Callable[[], object], timeout: float = 1.0) -> None:
    """Wait until `condition()` is true (polled every 5 ms); AssertionError at `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g}s")
        await asyncio.sleep(0.005)


# the runtime -----------------------------------------------------------------------------

HttpHandler = Callable[["FakeContainer", web.BaseRequest], Awaitable[web.StreamResponse]]


async def answer_ok(container: FakeContainer, request: web.BaseRequest) -> web.StreamResponse:
    """The default HTTP behaviour: 200 "ok <container name>"."""
    return web.Response(text=f"ok {container.name}")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a fake container does once started."""

    exit_code: int | None = None  # exits at once with this code (status "exited")
    http: HttpHandler | None = None  # answers HTTP on its published ports (real sockets)


@dataclass(frozen=True, slots=True)
class OneOff:
    """A scripted one-off (predeploy, postdeploy): runs `seconds`, then exits `exit_code`."""

    exit_code: int = 0
    output: str = ""
    seconds: float = 0.0  # longer than the caller's timeout: the engine reports a timeout
    timed_out: bool = False  # the engine reports a timeout at once


@dataclass
class FakeContainer:
    id: str
    spec: ContainerSpec
    behaviour: Behaviour
    status: str = "created"
    exit_code: int | None = None
    started_at: float | None = None
    restart_policy: str = "no"
    ports: dict[int, int] = field(default_factory=dict)
    runner: web.ServerRunner | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def labels(self) -> Mapping[str, str]:
        return self.spec.labels

    def info(self) -> ContainerInfo:
        running = self.status == "running"
        return ContainerInfo(
            id=self.id,
            name=self.spec.name,
            labels=MappingProxyType(dict(self.spec.labels)),
            status=self.status,
            exit_code=self.exit_code if self.status in ("exited", "dead") else None,
            started_at=self.started_at,
            pid=os.getpid() if running else 0,  # /proc/<pid>/net: this process's sockets
            ports=MappingProxyType(dict(self.ports)),
        )


class Gate:
    """Holds calls of one operation: `entered` is set when the first one arrives; each waits
    until `open()`."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self._open = asyncio.Event()
        self.waiting = 0

    def open(self) -> None:
        self._open.set()

    async def pass_through(self) -> None:
        self.waiting += 1
        self.entered.set()
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1


@dataclass
class _Rule:
    op: str
    match: str
    action: BaseException | Gate
    times: int | None  # None: every call


class FakeRuntime:
    """The `Runtime` Protocol in memory. `match` arguments are substrings of the container's
    name or image (for `run`, `run_oneoff`) or of its id (everything else; ids contain the
    container name)."""

    def __init__(self, journal: Journal | None = None, *, http: bool = False) -> None:
        self.journal = journal if journal is not None else Journal()
        self.containers: dict[str, FakeContainer] = {}
        self.missing_images: set[str] = set()
        self.registry: set[str] = set()  # images `pull` finds
        self.default = Behaviour(http=answer_ok if http else None)
        self._scripts: list[tuple[str, Behaviour]] = []
        self._oneoffs: list[tuple[str, OneOff]] = []
        self._rules: list[_Rule] = []
        self.unreachable = False  # True: every call raises, as when dockerd does not answer
        self._ids = itertools.count(1)
        self._ports = itertools.count(41001)
        self._subscribers: list[tuple[Mapping[str, str], asyncio.Queue[RuntimeEvent]]] = []
        self.subscribed = asyncio.Event()  # set when someone follows the event stream
        # DockerRuntime runs each call in a thread (asyncio.to_thread): a cancelled caller stops
        # waiting, but the container is created all the same. True: `run` behaves so.
        self.runs_in_threads = False
        self._background: set[asyncio.Future[ContainerInfo]] = set()
        self.exec_result: Callable[[FakeContainer, tuple[str, ...]], OneOffResult] = (
            lambda c, cmd: OneOffResult(0, "ok")
        )

    # knobs -------------------------------------------------------------------------------

    def script(self, match: str, behaviour: Behaviour) -> None:
        """Containers whose name or image contains `match` behave so (the last match wins)."""
        self._scripts.append((match, behaviour))

    def oneoff(self, match: str, result: OneOff) -> None:
        """One-offs whose name contains `match` (e.g. "predeploy") run so."""
        self._oneoffs.append((match, result))

    def fail(self, op: str, exc: BaseException, match: str = "", times: int | None = 1) -> None:
        """The next `times` calls of `op` (None: all) matching `match` raise `exc`."""
        self._rules.append(_Rule(op, match, exc, times))

    def gate(self, op: str, match: str = "") -> Gate:
        """Calls of `op` matching `match` wait until the returned gate is opened."""
        gate = Gate()
        self._rules.append(_Rule(op, match, gate, None))
        return gate

    def open_gates(self) -> None:
        """Let every held call go on (at the end of a test, so none is left pending)."""
        for rule in self._rules:
            if isinstance(rule.action, Gate):
                rule.action.open()

    # inspection helpers for tests ----------------------------------------------------------

    def running(self, **labels: str) -> list[FakeContainer]:
        return [c for c in self.containers.values()
                if c.status == "running" and _has(c.labels, _labels(labels))]

    def named(self, name: str) -> FakeContainer:
        (found,) = [c for c in self.containers.values() if c.name == name]
        return found

    async def die(self, container_id: str, exit_code: int) -> None:
        """The container's process exits (a crash, an OOM kill): status exited, a die event."""
        await self._exit(self.containers[container_id], exit_code)

    async def vanish(self, container_id: str) -> None:
        """Someone `docker rm -f` the container behind dockyard's back."""
        c = self.containers.pop(container_id)
        await self._close_server(c)
        self._publish("destroy", c)

    async def close(self) -> None:
        for work in list(self._background):
            work.cancel()
        for c in list(self.containers.values()):
            await self._close_server(c)

    # the Protocol --------------------------------------------------------------------------

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        self.journal.add("run", spec.name)
        if self.runs_in_threads:  # cancelling the caller does not stop the engine
            work = asyncio.ensure_future(self._run(spec))
            self._background.add(work)
            work.add_done_callback(self._background.discard)
            return await asyncio.shield(work)
        return await self._run(spec)

    async def run_group(self, specs: Sequence[ContainerSpec]) -> list[ContainerInfo]:
        """As DockerRuntime does: each on its own, in parallel; all or nothing."""
        return await run_each(specs, self.run, self.remove)

    async def _run(self, spec: ContainerSpec) -> ContainerInfo:
        await self._apply_rules("run", f"{spec.name} {spec.image}")
        if spec.image in self.missing_images:
            raise RuntimeFailure(f"image {spec.image!r} not found")
        if any(c.name == spec.name for c in self.containers.values()):
            raise RuntimeFailure(f"Conflict. The container name {spec.name!r} is already in use")
        c = FakeContainer(
            id=f"{next(self._ids):04d}-{spec.name}",
            spec=spec,
            behaviour=self._behaviour(spec),
            restart_policy=spec.restart,
        )
        self.containers[c.id] = c
        await self._start(c)
        return c.info()

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Created, not started (`dockyard run`)."""
        self.journal.add("create", spec.name)
        container = FakeContainer(id=f"{next(self._ids):04d}-{spec.name}", spec=spec,
                                  behaviour=self._behaviour(spec))
        self.containers[container.id] = container
        return container.info()

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        await self._apply_rules("inspect", container_id)
        c = self.containers.get(container_id)
        return c.info() if c else None

    async def list(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        self.journal.add("list", dict(labels))
        await self._apply_rules("list", "")
        return [c.info() for c in self.containers.values() if _has(c.labels, labels)]

    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None:
        self.journal.add("kill", container_id, signal)
        await self._apply_rules("kill", container_id)
        c = self.containers.get(container_id)
        if c is not None and c.status == "running":
            await self._exit(c, 128 + int(signals.Signals[signal]))

    async def stop(self, container_id: str, timeout: float) -> None:
        self.journal.add("stop", container_id, timeout)
        await self._apply_rules("stop", container_id)
        c = self.containers.get(container_id)
        if c is not None and c.status == "running":
            await self._exit(c, 128 + signals.SIGTERM)

    async def start(self, container_id: str) -> ContainerInfo | None:
        self.journal.add("start", container_id)
        await self._apply_rules("start", container_id)
        c = self.containers.get(container_id)
        if c is None:
            return None
        if c.status != "running":
            await self._start(c)
        return c.info()

    async def no_restart(self, container_id: str) -> None:
        self.journal.add("no_restart", container_id)
        await self._apply_rules("no_restart", container_id)
        c = self.containers.get(container_id)
        if c is not None:
            c.restart_policy = "no"

    async def remove(self, container_id: str) -> None:
        self.journal.add("remove", container_id)
        await self._apply_rules("remove", container_id)
        c = self.containers.pop(container_id, None)
        if c is not None:
            await self._close_server(c)
            self._publish("destroy", c)

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> OneOffResult:
        self.journal.add("exec", container_id, command)
        await self._apply_rules("exec", container_id)
        c = self.containers.get(container_id)
        if c is None or c.status != "running":
            return OneOffResult(-1, "container is gone")
        return self.exec_result(c, command)

    async def run_oneoff(self, spec: ContainerSpec, timeout: float | None) -> OneOffResult:
        self.journal.add("run_oneoff", spec.name, spec.command)
        await self._apply_rules("run_oneoff", f"{spec.name} {spec.image}")
        script = next((r for m, r in reversed(self._oneoffs) if m in spec.name), OneOff())
        if script.timed_out:
            return OneOffResult(-1, script.output, timed_out=True)
        if timeout is not None and script.seconds > timeout:
            await asyncio.sleep(timeout)
            return OneOffResult(-1, script.output, timed_out=True)
        await asyncio.sleep(script.seconds)
        return OneOffResult(script.exit_code, script.output)

    async def pull(
        self, image: str, auth: Mapping[str, str] | None, progress: Callable[[Mapping[str, str]], None]
    ) -> None:
        """Images in `registry` pull (and then exist); any other is a registry's refusal."""
        self.journal.add("pull", image, dict(auth) if auth else None)
        await self._apply_rules("pull", image)
        if image not in self.registry:
            raise RuntimeFailure(f"pull access denied for {image}, repository does not exist")
        progress({"status": "Pull complete", "id": "layer1"})
        self.missing_images.discard(image)

    async def image_exists(self, image: str) -> bool:
        self.journal.add("image_exists", image)
        await self._apply_rules("image_exists", image)
        return image not in self.missing_images

    async def remove_image(self, image: str) -> bool:
        """As Docker: kept while any container (of any app or owner) was made from it."""
        await self._apply_rules("remove_image", image)
        if any(c.spec.image == image for c in self.containers.values()):
            self.journal.add("remove_image", image, False)
            return False
        self.journal.add("remove_image", image, True)
        self.missing_images.add(image)
        return True

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        queue: asyncio.Queue[RuntimeEvent] = asyncio.Queue()
        entry = (dict(labels), queue)
        self._subscribers.append(entry)
        self.subscribed.set()
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(entry)

    async def follow_output(self, container_id: str) -> AsyncIterator[bytes]:
        """Nothing printed; ends when the container stops or is gone."""
        self.journal.add("follow_output", container_id)
        while (c := self.containers.get(container_id)) is not None and c.status == "running":
            await asyncio.sleep(0.01)
        return
        yield b""

    async def build(self, context: bytes | Path, request: BuildRequest) -> str:
        """Every build succeeds: the image exists from then on."""
        self.journal.add("build", request.app, request.tag)
        await self._apply_rules("build", request.tag)
        self.missing_images.discard(request.tag)
        return f"sha256:{request.tag}"

    # internals -----------------------------------------------------------------------------

    def _behaviour(self, spec: ContainerSpec) -> Behaviour:
        where = f"{spec.name} {spec.image}"
        return next((b for m, b in reversed(self._scripts) if m in where), self.default)

    async def _apply_rules(self, op: str, subject: str) -> None:
        if self.unreachable:
            raise RuntimeFailure("Error while fetching server API version: Connection refused")
        for rule in list(self._rules):
            if rule.op != op or rule.match not in subject:
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
            if isinstance(rule.action, Gate):
                await rule.action.pass_through()
            else:
                raise rule.action

    async def _start(self, c: FakeContainer) -> None:
        c.started_at = time.time()
        if c.behaviour.exit_code is not None:
            c.status, c.exit_code = "exited", c.behaviour.exit_code
            self._publish("start", c)
            self._publish("die", c)
            return
        c.status, c.exit_code = "running", None
        if c.spec.network == "host":
            c.ports = {}
        else:
            c.ports = {p: next(self._ports) for p in c.spec.ports}  # new ports on each start
        if c.behaviour.http is not None:
            await self._serve(c)
        self._publish("start", c)

    async def _serve(self, c: FakeContainer) -> None:
        handler = c.behaviour.http
        assert handler is not None

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            return await handler(c, request)

        runner = web.ServerRunner(web.Server(handle), handle_signals=False)
        await runner.setup()
        if c.spec.network == "host":
            site = web.TCPSite(runner, "127.0.0.1", int(c.spec.labels[LABEL_PORT]))
            await site.start()
        else:
            for port in c.spec.ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", 0))
                c.ports[port] = sock.getsockname()[1]
                await web.SockSite(runner, sock).start()
        c.runner = runner

    async def stop_listening(self, container_id: str) -> None:
        """The app inside closes its sockets while the container keeps running."""
        await self._close_server(self.containers[container_id])

    async def _close_server(self, c: FakeContainer) -> None:
        if c.runner is not None:
            runner, c.runner = c.runner, None
            await runner.cleanup()

    async def _exit(self, c: FakeContainer, exit_code: int) -> None:
        c.status, c.exit_code = "exited", exit_code
        await self._close_server(c)
        self._publish("die", c)

    def _publish(self, action: str, c: FakeContainer) -> None:
        event = RuntimeEvent(action, c.id, MappingProxyType(dict(c.labels)),
                             c.exit_code if action == "die" else None)
        for labels, queue in self._subscribers:
            if _has(c.labels, labels):
                queue.put_nowait(event)


def _labels(kwargs: Mapping[str, str]) -> dict[str, str]:
    """process="web" -> {"dockyard.process": "web"}."""
    return {k if "." in k else f"dockyard.{k}": v for k, v in kwargs.items()}


def _has(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """Docker's label filter: key=value, or just the key when the value is empty."""
    return all(k in labels and (not v or labels[k] == v) for k, v in wanted.items())


# the route sink ---------------------------------------------------------------------------


class RecordingRoutes:
    """The `RouteSink` Protocol: records each call and keeps the resulting route table."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal()
        self.own = Journal()  # this sink's calls only (the journal may be shared)
        self.table: dict[str, tuple[str, ...]] = {}  # app -> targets
        self.options: dict[str, dict[str, Any]] = {}  # app -> hosts, path_prefix, ...
        self.inflight_counts: dict[str, int] = {}
        self.drain_gate: Gate | None = None  # set one to hold drains
        self.rollouts: dict[str, dict[str, Any]] = {}  # app -> release, canary_release, ...
        # app -> release -> counters, as Proxy.release_stats gives them (tests script them)
        self.stats: dict[str, dict[str, dict[str, Any]]] = {}
        self.target_failed: Callable[[str, str], None] | None = None  # passive health's hook

    def set_app(
        self,
        app: str,
        hosts: Sequence[str],
        targets: Sequence[str],
        *,
        path_prefix: str = "/",
        balance: str = "round_robin",
        tls_redirect: bool = False,
        hsts: int | None = None,
        release: str = "",
        canary_release: str = "",
        canary_targets: Sequence[str] = (),
        canary_percent: float = 0.0,
        maintenance: Any = None,
        error_pages: Mapping[int, bytes] | None = None,
        policy: Any = None,
    ) -> None:
        self.rollouts[app] = {"release": release, "canary_release": canary_release,
                              "canary_targets": tuple(canary_targets), "canary_percent": canary_percent}
        self.journal.add("set_app", app, tuple(targets))
        self.own.add("set_app", app, tuple(targets))
        self.table[app] = tuple(targets)
        self.options[app] = {"hosts": tuple(hosts), "path_prefix": path_prefix,
                             "balance": balance, "tls_redirect": tls_redirect, "hsts": hsts,
                             "maintenance": maintenance, "error_pages": dict(error_pages or {}),
                             "policy": policy}

    def remove_app(self, app: str) -> None:
        self.journal.add("remove_app", app)
        self.own.add("remove_app", app)
        self.table.pop(app, None)
        self.options.pop(app, None)

    def replace_routes(self, routes: Mapping[str, Route | None]) -> None:
        """As the proxy: the whole new table is checked first (a host+prefix claimed by two
        apps raises RouteConflictError and changes nothing), then installed at once."""
        options = dict(self.options)
        table = dict(self.table)
        for app, route in routes.items():
            if route is None:
                options.pop(app, None)
                table.pop(app, None)
            else:
                table[app] = tuple(route.targets)
                options[app] = {"hosts": tuple(route.hosts), "path_prefix": route.path_prefix,
                                "balance": route.balance, "tls_redirect": route.tls_redirect,
                                "hsts": route.hsts, "maintenance": route.maintenance,
                                "error_pages": dict(route.error_pages or {}), "policy": route.policy}
        owner: dict[tuple[str, str], str] = {}
        for app, opts in options.items():
            for host in opts["hosts"]:
                key = (host, opts["path_prefix"])
                if key in owner:
                    raise RouteConflictError(f"host={host} claimed by app={owner[key]} and app={app}")
                owner[key] = app
        self.journal.add("replace_routes", tuple(sorted(routes)))
        self.own.add("replace_routes", tuple(sorted(routes)))
        self.table, self.options = table, options
        for app, route in routes.items():
            if route is not None:
                self.rollouts[app] = {"release": route.release, "canary_release": route.canary_release,
                                      "canary_targets": route.canary_targets,
                                      "canary_percent": route.canary_percent}

    async def drain(self, targets: Iterable[str], timeout: float) -> int:
        self.journal.add("drain", tuple(targets), timeout)
        self.own.add("drain", tuple(targets), timeout)
        if self.drain_gate is not None:
            await self.drain_gate.pass_through()
        return 0

    async def warm(self, targets: Sequence[str], replacing: Sequence[str]) -> int:
        self.journal.add("warm", tuple(targets), tuple(replacing))
        self.own.add("warm", tuple(targets), tuple(replacing))
        return len(targets)

    def inflight(self) -> dict[str, int]:
        return dict(self.inflight_counts)

    async def settled(self) -> float:
        return 0.0

    def on_target_failed(self, callback: Callable[[str, str], None] | None) -> None:
        self.target_failed = callback  # a test calls it as the proxy would

    def release_stats(self, app: str) -> dict[str, dict[str, Any]]:
        return {release: dict(s) for release, s in self.stats.get(app, {}).items()}

    def set_apps(self, app: str | None = None) -> list[tuple[str, ...]]:
        """The targets of every set_app call (of `app`), in order."""
        return [c.args[1] for c in self.own.calls
                if c.op == "set_app" and (app is None or c.args[0] == app)]


# a supervisor on the fakes ----------------------------------------------------------------

FAST_APP: dict[str, Any] = {
    "image": "app:v1",
    "default_checks_wait": 0,
    "retire_after": 0,
    "drain_timeout": 0.05,
    "stop_timeout": 0.05,
    "deploy_timeout": 5,
}


def fast_app(**extra: Any) -> dict[str, Any]:
    """An app definition with millisecond timings (hosts: <name>.test are added by `rig`)."""
    return {**FAST_APP, **extra}


def make_config(tmp_path: Path, apps: Mapping[str, Mapping[str, Any]], **server: Any) -> Config:
    data = {
        "server": {"state_dir": str(tmp_path / "state"), "instance": "fake", **server},
        "apps": {name: {"hosts": [f"{name}.test"], **spec} for name, spec in apps.items()},
    }
    return parse_config(data, tmp_path / "dockyard.toml")


@dataclass
class Rig:
    sup: Supervisor
    runtime: FakeRuntime
    routes: RecordingRoutes
    state: StateStore
    journal: Journal
    events: list[dict[str, Any]] = field(default_factory=list)  # every progress event
    later: list[Rig] = field(default_factory=list)  # supervisors started by restarted()

    @property
    def ctx(self) -> Context:
        return self.sup.ctx

    def clear(self) -> None:
        """Forget the calls so far (the journal, the route sink's own list) and the events."""
        self.journal.clear()
        self.routes.own.clear()
        self.events.clear()

    def progress(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))

    async def deploy(self, name: str, image: str | None = None) -> DeployReport:
        return await self.sup.deploy(name, image, progress=self.progress)

    def current(self, name: str) -> Release:
        """The app's active release (AssertionError when none is)."""
        release = self.state.current(name)
        assert release is not None, f"{name} has no active release"
        return release

    def serving_ids(self, name: str) -> list[str]:
        serving = self.sup.serving.get(name)
        return [c.id for c in serving.containers] if serving else []

    def restarted(self, config: Config | None = None) -> Rig:
        """A daemon restart: a new Supervisor with a new (empty) route table, on the same state
        dir and the same containers. The old one's retire timers are left to the test (close
        `sup.retirer` to stop them, as a daemon stopping does)."""
        state = StateStore(self.state.path.parent)
        routes = RecordingRoutes(self.journal)
        config = config or self.sup.ctx.apps.base
        again = Rig(Supervisor(config, self.runtime, routes, state), self.runtime, routes, state,
                    self.journal)
        self.later.append(again)
        return again

    async def close(self) -> None:
        for other in self.later:
            await other.close()
        await self.sup.retirer.close()
        self.state.close()


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, apps: Mapping[str, Mapping[str, Any]], *, http: bool = False,
              **server: Any) -> AsyncIterator[Rig]:
    """A real Supervisor (and SQLite) on a FakeRuntime and a RecordingRoutes."""
    config = make_config(tmp_path, apps, **server)
    journal = Journal()
    runtime = FakeRuntime(journal, http=http)
    routes = RecordingRoutes(journal)
    state = StateStore(config.server.state_dir)
    r = Rig(Supervisor(config, runtime, routes, state), runtime, routes, state, journal)
    try:
        yield r
    finally:
        runtime.open_gates()
        await asyncio.sleep(0.01)  # calls held by a gate end (a late start retires at once)
        await r.close()
        await runtime.close()


if TYPE_CHECKING:  # mypy checks that the fakes are what the supervisor asks for

    def _conforms(runtime: FakeRuntime, routes: RecordingRoutes) -> tuple[Runtime, RouteSink]:
        return runtime, routes
