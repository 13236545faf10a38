"""The seam between the supervisor and the container engine.

`Runtime` is a small Protocol; `runtime/docker.py` (containers) and `runtime/swarm.py` (Swarm
services) implement it, and `runtime/select.py` picks one per app by `ContainerSpec.scheduler`.
Pure logic (plans, specs) never needs it; integration tests use the real engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from supervisor.model import defaults
from supervisor.model.kinds import Network, Scheduler
from supervisor.runtime.builds import BuildRequest


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything needed to start one container."""

    name: str
    image: str
    command: str | tuple[str, ...] | None
    env: Mapping[str, str]
    labels: Mapping[str, str]
    network: Network = "bridge"
    ports: tuple[int, ...] = ()  # container ports published on 127.0.0.1 (bridge only)
    memory: str | None = None
    cpus: float | None = None
    cpu_shares: int | None = None  # relative CPU weight (Docker's default 1024); one-offs: lower
    volumes: tuple[str, ...] = ()
    restart: str = "no"
    stop_timeout: float = defaults.STOP_TIMEOUT
    scheduler: Scheduler = defaults.SCHEDULER  # which runtime starts it (runtime/select.py)
    placement: tuple[str, ...] = ()  # swarm placement constraints
    tty: bool = False  # `dockyard run -it`: a pseudo-terminal, stdin kept open


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What the engine says about one container."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    status: str = "created"  # created | running | exited | dead | ...
    exit_code: int | None = None
    started_at: float | None = None  # epoch seconds
    restart_count: int = 0
    pid: int = 0  # host pid of the main process (0 when not running)
    ports: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))  # container -> host
    host: str = "127.0.0.1"  # where the published ports are reached (a swarm task: its node)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def app(self) -> str:
        return self.labels.get(defaults.LABEL_APP, "")

    @property
    def process(self) -> str:
        return self.labels.get(defaults.LABEL_PROCESS, "")

    @property
    def release(self) -> int:
        try:
            return int(self.labels.get(defaults.LABEL_RELEASE, "0"))
        except ValueError:
            return 0


@dataclass(frozen=True, slots=True)
class OneOffResult:
    exit_code: int
    output: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """A container lifecycle event (start, die, ...) from the engine's event stream."""

    action: str
    container_id: str
    labels: Mapping[str, str]
    exit_code: int | None = None


class Runtime(Protocol):
    async def run(self, spec: ContainerSpec) -> ContainerInfo: ...

    async def run_group(self, specs: Sequence[ContainerSpec]) -> list[ContainerInfo]:
        """Start the containers of one release x process type together (a Swarm service);
        all or nothing: on failure, what was started is removed and the error raised."""
        ...

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create a container without starting it (`dockyard run`: the CLI attaches, then starts)."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo | None: ...

    async def list(self, labels: Mapping[str, str]) -> list[ContainerInfo]: ...

    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None: ...

    async def stop(self, container_id: str, timeout: float) -> None: ...

    async def start(self, container_id: str) -> ContainerInfo | None: ...

    async def no_restart(self, container_id: str) -> None: ...

    async def remove(self, container_id: str) -> None: ...

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> OneOffResult: ...

    async def run_oneoff(self, spec: ContainerSpec, timeout: float | None) -> OneOffResult: ...

    async def image_exists(self, image: str) -> bool: ...

    async def pull(
        self, image: str, auth: Mapping[str, str] | None, progress: Callable[[Mapping[str, str]], None]
    ) -> None:
        """Pull `image` from its registry (`auth`: username/password; None: the engine
        client's own store, ~/.docker/config.json). `progress` gets each layer's status
        change; RuntimeFailure carries the registry's error."""
        ...

    async def remove_image(self, image: str) -> bool:
        """Remove the image tag unless a container (any, running or not, dockyard's or not)
        uses it; True when it is gone."""
        ...

    def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]: ...

    def follow_output(self, container_id: str) -> AsyncIterator[bytes]:
        """A container's output (stdout and stderr) from its start, as it comes, until it stops;
        ends quietly when the container is gone (cron's streamed runs, scheduler/oneoff.py)."""
        ...

    async def build(self, context: bytes | Path, request: BuildRequest) -> str:
        """`docker build` of the tar `context` (bytes, or a tar file); the image id.
        BuildError on failure or after `request.timeout` (runtime/builds.py)."""
        ...
