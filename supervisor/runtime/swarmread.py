"""Reading the Swarm: nodes, and each dockyard service's tasks as slots (`ContainerInfo`).

`SwarmReader` is the read half of the Swarm runtime (runtime/swarm.py starts and stops; the
watching is here): one call lists the services carrying some labels and one their tasks, each slot's
current task becomes a `ContainerInfo` whose id is the slot ("hello_web_r8.2",
runtime/services.py) and whose address is its node's; a task on this node gets its
container's IPv4 host ports. Also what `dockyard validate` asks: is this engine a manager.

Watching: the Engine API has no task events (only service and node ones, and container
events are per node), so `events()` polls the manager's task and node lists every
`POLL_INTERVAL` seconds: one call each, every node's tasks, and a node that goes down takes its
tasks with it. A slot whose running task stops being the running one yields a "die".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import docker.errors

from supervisor.model.errors import RuntimeFailure
from supervisor.runtime import engine
from supervisor.runtime import services as svc
from supervisor.runtime.engine import EngineClient
from supervisor.runtime.protocol import ContainerInfo, RuntimeEvent

log = logging.getLogger("dockyard.supervisor")
POLL_INTERVAL = 0.25  # seconds between task-list polls (events, waits)


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
        client = client or engine.connect(engine.PROBE_TIMEOUT)
        with engine.translated():
            return not_a_manager_message(client.info())
    except RuntimeFailure as exc:
        return f"scheduler = \"swarm\" needs a Docker engine, and none answers: {exc.__cause__ or exc}"

def by_slot(tasks: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    slots: dict[int, list[dict[str, Any]]] = {}
    for task in tasks:
        slots.setdefault(int(task.get("Slot") or 0), []).append(task)
    return slots



class SwarmReader(EngineClient):
    """The slots and nodes of the local engine's Swarm (a manager)."""

    def __init__(self, client: Any | None = None) -> None:
        super().__init__(client)
        self._local_node = ""
        self._ports: dict[str, dict[int, int]] = {}  # container id -> its IPv4 host ports

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
            for slot_tasks in by_slot(tasks).values():
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
        for slot_tasks in by_slot(tasks).values():
            task = svc.current_task(slot_tasks)
            if task is not None and task.get("DesiredState") in ("running", "ready"):
                result.append((self._task_info(task, labels, name, nodes), task))
        return result

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

    def _service_slots_any_sync(self, name: str) -> list[dict[str, Any]]:
        try:
            service = self.client.api.inspect_service(name)
        except docker.errors.NotFound:
            return []
        return [t for t in self.client.api.tasks(filters={"service": service["ID"]})
                if t.get("ServiceID") == service["ID"]]

    async def _exit_code(self, task_id: str) -> int | None:
        try:
            task = await self._call(self.client.api.inspect_task, task_id)
        except (docker.errors.NotFound, RuntimeFailure):
            return None
        code = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
        return int(code) if code is not None else None

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
