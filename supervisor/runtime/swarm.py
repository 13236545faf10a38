"""The Swarm Runtime: each release x process type is one Swarm service, a task slot a container.

Swarm places and restarts; dockyard keeps the checks, the swap, the drain. A release is never
rolled in place (no `docker service update` of an image): a deploy creates a new service
(`hello_web_r8`, replicas = scale), waits for its tasks to run, and hands each task to the deploy
flow as a `ContainerInfo` whose id is its slot ("hello_web_r8.2", runtime/services.py). The
flow checks each task at its node's address and published port, swaps, drains, and removing the
last slot of a service removes the service (Swarm stops its tasks with `stop_grace_period`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker.errors

from supervisor.model import defaults
from supervisor.model.errors import RuntimeFailure
from supervisor.runtime import services as svc
from supervisor.runtime.builds import BuildRequest
from supervisor.runtime.docker import DockerRuntime, exec_within
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec, OneOffResult
from supervisor.runtime.swarmread import POLL_INTERVAL, SwarmReader, not_a_manager_message

log = logging.getLogger("dockyard.supervisor")
START_TIMEOUT = 600.0  # a service whose tasks never run is removed after this
RESTART_WAIT = 60.0
STOP_SEEN_WAIT = 10.0  # how long a stopped task may take to show as stopped in the manager  # how long start() waits for Swarm to replace a dead task
FAILED_START = frozenset({"failed", "rejected"})


class SwarmRuntime(SwarmReader):
    """Runtime backed by the Swarm of the local Docker engine (a manager); reading the swarm
    (slots, nodes): runtime/swarmread.py."""

    def __init__(self, client: Any | None = None) -> None:
        super().__init__(client)
        self._retiring: dict[str, set[int]] = {}  # service -> slots handed to the retirer
        self._locks: dict[str, asyncio.Lock] = {}

    async def check_manager(self) -> None:
        """RuntimeFailure unless this engine is a Swarm manager."""
        message = not_a_manager_message(await self._call(self.client.info))
        if message:
            raise RuntimeFailure(message)

    # starting --------------------------------------------------------------------------

    async def run_group(self, specs: Sequence[ContainerSpec]) -> list[ContainerInfo]:
        """One service with a task per spec; its tasks once all run with their ports. All or
        nothing: a failure or a cancellation removes the service."""
        if not specs:
            return []
        kwargs = svc.service_spec(specs[0], len(specs))
        name = kwargs["name"]
        create = asyncio.ensure_future(self._create(specs[0], kwargs))
        try:
            await asyncio.shield(create)
        except asyncio.CancelledError:  # the call goes on in its thread: undo it once it ends
            with contextlib.suppress(Exception):
                await create
                await self._remove_service(name)
            raise
        try:
            return await self._wait_slots(name, len(specs), exclude=set(), ports=bool(specs[0].ports))
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._remove_service(name))
            raise

    async def _create(self, spec: ContainerSpec, kwargs: dict[str, Any]) -> None:
        try:
            await self._call(self.client.api.create_service, **kwargs)
        except RuntimeFailure as exc:
            raise RuntimeFailure(f"cannot create service {kwargs['name']}: {exc}") from exc
        log.info("service created service=%s image=%s", kwargs["name"], spec.image)

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        """One more task: a new service, or the release's service one replica larger (scale)."""
        name = svc.service_of(spec)
        async with self._lock(name):
            service = await self._service(name)
            if service is None:
                return (await self.run_group([spec]))[0]
            before = {svc.parse_slot_id(c.id)[1] for c in await self.list(_labels_of(spec))  # type: ignore[index]
                      if c.id.startswith(name + ".")}
            replicas = service["Spec"]["Mode"]["Replicated"]["Replicas"]
            await self._scale(name, replicas + 1)
        infos = await self._wait_slots(name, 1, exclude=before, ports=bool(spec.ports))
        slot = svc.parse_slot_id(infos[0].id)
        if slot:
            self._retiring.get(name, set()).discard(slot[1])
        return infos[0]

    async def _wait_slots(self, name: str, count: int, *, exclude: set[int], ports: bool) -> list[ContainerInfo]:
        """Wait until `count` slots of service `name` (not those in `exclude`) run a task with its
        published ports; RuntimeFailure when a task fails to start or cannot be placed."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            infos = await self._call(self._service_slots_sync, name)
            if infos is None:
                raise RuntimeFailure(f"service {name} is gone")
            fresh = [(i, t) for i, t in infos if svc.parse_slot_id(i.id)[1] not in exclude]  # type: ignore[index]
            for info, task in fresh:
                status = task.get("Status") or {}
                if status.get("State") in FAILED_START:
                    raise RuntimeFailure(f"task {info.name} of {name} {status.get('State')}: "
                                         f"{status.get('Err') or status.get('Message')}")
                if status.get("State") == "pending" and "no suitable node" in (status.get("Err") or ""):
                    raise RuntimeFailure(f"task {info.name} of {name} cannot be placed: {status['Err']}")
            ready = [i for i, _ in fresh if i.running and (i.ports or not ports)]
            if len(ready) >= count:
                return sorted(ready, key=lambda i: i.id)
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"the tasks of {name} did not run within {START_TIMEOUT:g}s")
            await asyncio.sleep(POLL_INTERVAL)

    async def start(self, container_id: str) -> ContainerInfo | None:
        """Swarm restarts a dead task itself (its restart policy): wait for the slot's next task
        to run; its state, or None when it does not come (policy exhausted, service gone)."""
        deadline = time.monotonic() + RESTART_WAIT
        while time.monotonic() < deadline:
            info = await self.inspect(container_id)
            if info is None:
                return None
            if info.running and info.ports:
                return info
            await asyncio.sleep(POLL_INTERVAL)
        return await self.inspect(container_id)

    # stopping --------------------------------------------------------------------------

    async def no_restart(self, container_id: str) -> None:
        """The slot is being retired: its service's removal (or a scale down) will stop it."""
        parsed = svc.parse_slot_id(container_id)
        if parsed:
            self._retiring.setdefault(parsed[0], set()).add(parsed[1])

    async def _keep(self, name: str) -> tuple[dict[str, Any] | None, set[int], set[int]]:
        """The service, its live slots, and those of them not on their way out."""
        service = await self._service(name)
        if service is None:
            return None, set(), set()
        live = await self._call(self._service_slots_sync, name) or []
        slots = {svc.parse_slot_id(i.id)[1] for i, _ in live}  # type: ignore[index]
        return service, slots, slots - self._retiring.get(name, set())

    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None:
        """Signal the task's container (it must run on this node). A SIGTERM to a slot being
        retired is left to the service's removal or shrinking, which stops it gracefully."""
        parsed = svc.parse_slot_id(container_id)
        if parsed and signal == "SIGTERM" and parsed[1] in self._retiring.get(parsed[0], ()):
            return
        container = await self._local_container(container_id)
        if container:
            with contextlib.suppress(docker.errors.NotFound, RuntimeFailure):
                await self._call(self.client.api.kill, container, signal=signal)

    async def stop(self, container_id: str, timeout: float) -> None:
        """A scale down (other slots stay): stop this task's container first, so that Swarm
        removes this slot when the service shrinks (it removes tasks that do not run first).
        When the whole service goes, its removal stops the tasks (stop_grace_period)."""
        parsed = svc.parse_slot_id(container_id)
        if parsed is None:
            return
        self._retiring.setdefault(parsed[0], set()).add(parsed[1])
        service, _, keep = await self._keep(parsed[0])
        if service is None or not keep:
            return
        container = await self._local_container(container_id)
        if container:
            with contextlib.suppress(docker.errors.NotFound, RuntimeFailure):
                await self._call(self.client.api.stop, container, timeout=int(timeout))
        # the shrink that follows (remove) must find the task stopped in the manager's view
        deadline = time.monotonic() + timeout + STOP_SEEN_WAIT
        while time.monotonic() < deadline:
            info = await self.inspect(container_id)
            if info is None or not info.running:
                return
            await asyncio.sleep(POLL_INTERVAL)

    async def remove(self, container_id: str) -> None:
        """Remove a slot: the service shrinks by one (stop() stopped this slot's task first, so
        Swarm picks it: it removes tasks that do not run first), and goes with its last slot."""
        parsed = svc.parse_slot_id(container_id)
        if parsed is None:
            return
        name, slot = parsed
        async with self._lock(name):
            self._retiring.setdefault(name, set()).add(slot)
            service, _, keep = await self._keep(name)
            if service is None:
                self._retiring.pop(name, None)
                return
            replicas = ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
            if not keep or replicas is None:
                await self._remove_service(name)
                return
            tasks = await self._call(self._service_slots_any_sync, name)
            current = svc.current_task([t for t in tasks if int(t.get("Slot") or 0) == slot])
            if current is not None and current.get("DesiredState") != "remove" and replicas > 1:
                await self._scale(name, replicas - 1)  # else: gone already (an earlier call)

    async def _remove_service(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            await self._call(self.client.api.remove_service, name)
            log.info("service removed service=%s", name)
        self._retiring.pop(name, None)

    async def _scale(self, name: str, replicas: int) -> None:
        """As `docker service scale`: the current spec with another replica count, nothing else
        changed, so Swarm neither restarts nor replaces a running task."""
        def scale() -> None:
            api = self.client.api
            current = api.inspect_service(name)
            spec = dict(current["Spec"])
            spec["Mode"] = {"Replicated": {"Replicas": replicas}}
            url = api._url("/services/{0}/update", current["ID"])
            api._raise_for_status(api._post_json(url, data=spec, params={"version": current["Version"]["Index"]}))

        await self._call(scale)
        log.info("service scaled service=%s replicas=%d", name, replicas)

    async def _service(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call(self.client.api.inspect_service, name)
        except docker.errors.NotFound:
            return None
        return found

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # one-offs and checks ---------------------------------------------------------------

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> OneOffResult:
        """A command check, inside the task's container: on this node only."""
        container = await self._local_container(container_id)
        if container is None:
            return OneOffResult(-1, "the task does not run on this node (command checks need it here)")

        def run() -> OneOffResult:
            exit_code, output = self.client.containers.get(container).exec_run(list(command))
            return OneOffResult(int(exit_code or 0), (output or b"").decode(errors="replace"))

        return await exec_within(self._call(run), timeout)

    async def run_oneoff(self, spec: ContainerSpec, timeout: float | None) -> OneOffResult:
        """A `replicated-job` service run once; its exit code and output; always removed."""
        kwargs = svc.service_spec(spec, 1, job=True)
        name = kwargs["name"]
        await self._create(spec, kwargs)
        try:
            started = time.monotonic()
            while True:
                found = await self._call(self._service_slots_any_sync, name)
                task = found[0] if found else None
                state = ((task or {}).get("Status") or {}).get("State", "")
                if state in svc.FINAL_STATES:
                    status = task.get("Status") or {}  # type: ignore[union-attr]
                    code = (status.get("ContainerStatus") or {}).get("ExitCode")
                    output = await self._logs(name)
                    if state == "rejected" or code is None:
                        output += f"\n{status.get('Err') or status.get('Message') or state}"
                    return OneOffResult(int(code) if code is not None else -1, output)
                if timeout is not None and time.monotonic() - started > timeout:
                    output = await self._logs(name)
                    return OneOffResult(-1, output, timed_out=True)
                await asyncio.sleep(POLL_INTERVAL)
        finally:
            await asyncio.shield(self._remove_service(name))

    async def _logs(self, name: str) -> str:
        def read() -> str:
            chunks = self.client.api.service_logs(name, stdout=True, stderr=True, follow=False)
            return b"".join(chunks).decode(errors="replace")

        with contextlib.suppress(Exception):
            return str(await self._call(read))
        return ""

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """`dockyard run` attaches to a created container on this engine; a Swarm task has no
        such container before it is scheduled, so one-offs of a swarm app are refused."""
        raise RuntimeFailure(f"{spec.name}: dockyard run (create a container, then attach) is not supported "
                             "on swarm; scheduler = \"swarm\" apps run one-offs as jobs only")

    async def pull(
        self, image: str, auth: Mapping[str, str] | None, progress: Callable[[Mapping[str, str]], None]
    ) -> None:
        """Pulled on this engine (the manager), as a container deploy pulls it; the nodes pull
        it themselves from the registry when a task starts."""
        await DockerRuntime(self.client).pull(image, auth, progress)

    async def build(self, context: bytes | Path, request: BuildRequest) -> str:
        """On this engine (the manager), as pull."""
        return await DockerRuntime(self.client).build(context, request)

    async def remove_image(self, image: str) -> bool:
        """On this engine (the manager), as a container app's; nodes keep their own copies."""
        return await DockerRuntime(self.client).remove_image(image)

    async def follow_output(self, container_id: str) -> AsyncIterator[bytes]:
        """Swarm runs one-offs as jobs (run_oneoff: the output when the job ends); a slot's
        output is not followed."""
        raise RuntimeFailure(f"{container_id}: following the output of a swarm task is not supported")
        yield b""  # pragma: no cover  (makes this an async generator)


def _labels_of(spec: ContainerSpec) -> dict[str, str]:
    keys = (defaults.LABEL_INSTANCE, defaults.LABEL_APP, defaults.LABEL_RELEASE, defaults.LABEL_PROCESS)
    return {k: spec.labels[k] for k in keys if k in spec.labels}
