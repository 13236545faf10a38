"""The Swarm Runtime: each release x process type is one Swarm service, a task slot a container.

Swarm places and restarts; dockyard keeps the checks, the swap, the drain. A release is never
rolled in place (no `docker service update` of an image): a deploy creates a new service
(`hello_web_r8`, replicas = scale), waits for its tasks to run, and hands each task to the deploy
flow as a `ContainerInfo` whose id is its slot ("hello_web_r8.2", runtime/services.py). The
flow checks each task at its node's address and published port, swaps, drains, and removing the
last slot of a service removes the service (Swarm stops its tasks with `stop_grace_period`).

Watching: the Engine API has no task events (only service and node ones, and container
events are per node), so `events()` polls the manager's task and node lists every
`POLL_INTERVAL` seconds: one call each, every node's tasks, and a node that goes down takes its
tasks with it. A slot whose running task stops being the running one yields a "die".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import docker
import docker.errors

from supervisor.model import defaults
from supervisor.model.errors import RuntimeFailure
from supervisor.runtime import services as svc
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec, OneOffResult, RuntimeEvent

log = logging.getLogger("dockyard.supervisor")
POLL_INTERVAL = 0.25  # seconds between task-list polls (events, waits)
START_TIMEOUT = 600.0  # a service whose tasks never run is removed after this
RESTART_WAIT = 60.0
STOP_SEEN_WAIT = 10.0  # how long a stopped task may take to show as stopped in the manager  # how long start() waits for Swarm to replace a dead task
FAILED_START = frozenset({"failed", "rejected"})


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    hostname: str
    addr: str
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    role: str  # manager | worker
    leader: bool = False
    labels: Mapping[str, str] | None = None


def not_a_manager_message(info: Mapping[str, Any]) -> str | None:
    """None when `docker info` says this engine is a Swarm manager; else why not, and the fix."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState", "inactive")
    if state != "active":
        return (f"scheduler = \"swarm\" needs the Docker engine to be in a swarm (it is {state}): "
                "run `docker swarm init` here, see docs/swarm.md")
    if not swarm.get("ControlAvailable"):
        return ("scheduler = \"swarm\" needs the Docker engine to be a Swarm manager (this node is "
                "a worker): run dockyard on a manager, or `docker node promote` this node")
    return None


def swarm_problem(client: Any | None = None) -> str | None:
    """For `dockyard validate`: why the local engine cannot take scheduler = "swarm" apps."""
    try:
        client = client or docker.from_env(timeout=10)
        return not_a_manager_message(client.info())
    except docker.errors.DockerException as exc:
        return f"scheduler = \"swarm\" needs a Docker engine, and none answers: {exc}"


class SwarmRuntime:
    """Runtime backed by the Swarm of the local Docker engine (a manager)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client
        self._retiring: dict[str, set[int]] = {}  # service -> slots handed to the retirer
        self._locks: dict[str, asyncio.Lock] = {}
        self._local_node = ""
        self._ports: dict[str, dict[int, int]] = {}  # container id -> its IPv4 host ports

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=60)
            except docker.errors.DockerException as exc:
                raise RuntimeFailure(f"cannot reach the Docker engine: {exc}") from exc
        return self._client

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(str(exc)) from exc

    async def check_manager(self) -> None:
        """RuntimeFailure unless this engine is a Swarm manager."""
        message = not_a_manager_message(await self._call(self.client.info))
        if message:
            raise RuntimeFailure(message)

    # reading the swarm ---------------------------------------------------------------

    def _snapshot_sync(self, labels: Mapping[str, str]) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
        """(service name, service labels, tasks) of every dockyard service carrying `labels`."""
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()] + [svc.LABEL_SWARM]}
        services = self.client.api.services(filters=filters)
        if not services:
            return []
        ids = {s["ID"]: s for s in services}
        tasks = self.client.api.tasks(filters={"service": list(ids)})
        by_service: dict[str, list[dict[str, Any]]] = {sid: [] for sid in ids}
        for task in tasks:
            if task.get("ServiceID") in by_service:
                by_service[task["ServiceID"]].append(task)
        return [
            (s["Spec"]["Name"], dict(s["Spec"].get("Labels") or {}), by_service[sid])
            for sid, s in ids.items()
        ]

    def _nodes_sync(self) -> dict[str, NodeInfo]:
        if not self._local_node:
            self._local_node = (self.client.info().get("Swarm") or {}).get("NodeID", "")
        result = {}
        for node in self.client.api.nodes():
            spec = node.get("Spec") or {}
            status = node.get("Status") or {}
            manager = node.get("ManagerStatus") or {}
            result[node["ID"]] = NodeInfo(
                id=node["ID"],
                hostname=(node.get("Description") or {}).get("Hostname", ""),
                addr="127.0.0.1" if node["ID"] == self._local_node else status.get("Addr", ""),
                state=status.get("State", "unknown"),
                availability=spec.get("Availability", "active"),
                role=spec.get("Role", "worker"),
                leader=bool(manager.get("Leader")),
                labels=dict(spec.get("Labels") or {}),
            )
        return result

    def _slots_sync(self, labels: Mapping[str, str], *, live_only: bool = True) -> list[ContainerInfo]:
        nodes = self._nodes_sync()
        infos = []
        for name, service_labels, tasks in self._snapshot_sync(labels):
            for slot_tasks in _by_slot(tasks).values():
                task = svc.current_task(slot_tasks)
                if task is None or (live_only and task.get("DesiredState") not in ("running", "ready")):
                    continue
                infos.append(self._task_info(task, service_labels, name, nodes))
        return infos

    def _slot_sync(self, slot_ref: str) -> ContainerInfo | None:
        parsed = svc.parse_slot_id(slot_ref)
        if parsed is None:
            return None
        name, slot = parsed
        try:
            service = self.client.api.inspect_service(name)
        except docker.errors.NotFound:
            return None
        tasks = [t for t in self.client.api.tasks(filters={"service": service["ID"]})
                 if t.get("ServiceID") == service["ID"] and int(t.get("Slot") or 0) == slot]
        task = svc.current_task(tasks)
        if task is None:
            return None
        return self._task_info(task, dict(service["Spec"].get("Labels") or {}), name, self._nodes_sync())

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        result: ContainerInfo | None = await self._call(self._slot_sync, container_id)
        return result

    async def nodes(self) -> list[NodeInfo]:
        found: dict[str, NodeInfo] = await self._call(self._nodes_sync)
        return list(found.values())

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

    def _service_slots_sync(self, name: str) -> list[tuple[ContainerInfo, Mapping[str, Any]]] | None:
        try:
            service = self.client.api.inspect_service(name)
        except docker.errors.NotFound:
            return None
        tasks = [t for t in self.client.api.tasks(filters={"service": service["ID"]})
                 if t.get("ServiceID") == service["ID"]]
        nodes = self._nodes_sync()
        labels = dict(service["Spec"].get("Labels") or {})
        result = []
        for slot_tasks in _by_slot(tasks).values():
            task = svc.current_task(slot_tasks)
            if task is not None and task.get("DesiredState") in ("running", "ready"):
                result.append((self._task_info(task, labels, name, nodes), task))
        return result

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

    async def _local_container(self, container_id: str) -> str | None:
        """The container id of the slot's current task, when it runs on this node."""
        info = await self.inspect(container_id)
        if info is None:
            return None
        task_id = info.labels.get(svc.LABEL_TASK, "")
        try:
            task = await self._call(self.client.api.inspect_task, task_id)
        except docker.errors.NotFound:
            return None
        if task.get("NodeID") != self._local_node:
            log.warning("task not on this node task=%s node=%s", task_id, task.get("NodeID"))
            return None
        return ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")

    def _task_info(self, task: Mapping[str, Any], labels: Mapping[str, str], service: str,
                   nodes: Mapping[str, NodeInfo]) -> ContainerInfo:
        node = nodes.get(str(task.get("NodeID") or ""))
        info = svc.task_info(
            task, labels, service=service,
            node_name=node.hostname if node else "",
            host=node.addr if node and node.addr else "127.0.0.1",
            node_ready=node is None or node.state == "ready",
        )
        if info.running and task.get("NodeID") == self._local_node:
            cid = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
            ports = self._local_ports(cid) if cid else None
            if ports:
                info = dataclasses.replace(info, ports=MappingProxyType(ports))
        return info

    def _local_ports(self, container: str) -> dict[int, int] | None:
        """The IPv4 host ports of a task's container on this node. The task's PortStatus can
        name the IPv6 binding, which Docker 20.10 allocates apart from the IPv4 one for a
        host-mode port without a published port; a container's ports never change: cached."""
        if container in self._ports:
            return self._ports[container]
        try:
            attrs = self.client.api.inspect_container(container)
        except docker.errors.DockerException:
            return None
        ports = svc.ipv4_ports((attrs.get("NetworkSettings") or {}).get("Ports") or {})
        if len(self._ports) > 4096:
            self._ports.clear()
        self._ports[container] = ports
        return ports

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

        try:
            result: OneOffResult = await asyncio.wait_for(self._call(run), timeout)
        except TimeoutError:
            return OneOffResult(-1, f"command timed out after {timeout:g}s", timed_out=True)
        except docker.errors.NotFound:
            return OneOffResult(-1, "container is gone")
        return result

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

    def _service_slots_any_sync(self, name: str) -> list[dict[str, Any]]:
        try:
            service = self.client.api.inspect_service(name)
        except docker.errors.NotFound:
            return []
        return [t for t in self.client.api.tasks(filters={"service": service["ID"]})
                if t.get("ServiceID") == service["ID"]]

    async def _logs(self, name: str) -> str:
        def read() -> str:
            chunks = self.client.api.service_logs(name, stdout=True, stderr=True, follow=False)
            return b"".join(chunks).decode(errors="replace")

        with contextlib.suppress(Exception):
            return str(await self._call(read))
        return ""

    async def image_exists(self, image: str) -> bool:
        """On this engine, or in its registry (every node pulls it there, with the credentials
        of `docker login` on this host, which the SDK sends as --with-registry-auth does)."""
        try:
            await self._call(self.client.api.inspect_image, image)
            return True
        except (docker.errors.NotFound, RuntimeFailure):
            pass
        try:
            await self._call(self.client.api.inspect_distribution, image)
        except (docker.errors.NotFound, RuntimeFailure):
            return False
        return True

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
        from supervisor.runtime.docker import DockerRuntime

        await DockerRuntime(self.client).pull(image, auth, progress)

    async def remove_image(self, image: str) -> bool:
        """On this engine (the manager), as a container app's; nodes keep their own copies."""
        from supervisor.runtime.docker import DockerRuntime

        return await DockerRuntime(self.client).remove_image(image)

    # watching --------------------------------------------------------------------------

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        """A "die" per slot whose running task stopped running (or whose node went down),
        from polling the manager (see the module's docstring); until the consumer stops."""
        running: dict[str, ContainerInfo] = {}
        while True:
            now = {i.id: i for i in await self.list(labels)}
            for slot, before in running.items():
                info = now.get(slot)
                if info is None:
                    continue  # the service or slot was removed: retired, not dead
                task_before = before.labels.get(svc.LABEL_TASK)
                if not info.running or info.labels.get(svc.LABEL_TASK) != task_before:
                    code = await self._exit_code(task_before or "")
                    yield RuntimeEvent("die", slot, info.labels, code)
            running = {k: v for k, v in now.items() if v.running}
            await asyncio.sleep(POLL_INTERVAL)

    # last: `list` names the method from here on in the class body
    async def list(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        result: list[ContainerInfo] = await self._call(self._slots_sync, labels)
        return result

    async def _exit_code(self, task_id: str) -> int | None:
        try:
            task = await self._call(self.client.api.inspect_task, task_id)
        except (docker.errors.NotFound, RuntimeFailure):
            return None
        code = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
        return int(code) if code is not None else None


def _by_slot(tasks: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    slots: dict[int, list[dict[str, Any]]] = {}
    for task in tasks:
        slots.setdefault(int(task.get("Slot") or 0), []).append(task)
    return slots




def _labels_of(spec: ContainerSpec) -> dict[str, str]:
    keys = (defaults.LABEL_INSTANCE, defaults.LABEL_APP, defaults.LABEL_RELEASE, defaults.LABEL_PROCESS)
    return {k: spec.labels[k] for k in keys if k in spec.labels}
