"""Pure functions between dockyard's container specs and Docker Swarm: service names, the
create arguments of a service (one release x process type), and a task as a `ContainerInfo`.

No engine call here, so the mapping is unit-tested without Docker (tests/supervisor/
test_swarm_mapping.py); `runtime/swarm.py` makes the calls.

Identity: dockyard sees a swarm *task slot* as one container. Its id is "SERVICE.SLOT"
(`hello_web_r8.2`): Swarm replaces a dead task by a new task in the same slot, so the id the
fleet routes stays the same across Swarm's restarts, and the watcher's "restart" is waiting for
the slot's next task (deploy/watch.py needs no change).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from supervisor.model import defaults
from supervisor.runtime.containers import container_name
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec

RESTART_DELAY_NS = 1_000_000_000  # Swarm waits this long before replacing a dead task
LABEL_SWARM = "dockyard.swarm"  # on every service dockyard creates: "app" or "job"
LABEL_TASK = "dockyard.task"  # on a task's ContainerInfo: the Swarm task id
RUNNING = "running"
FINAL_STATES = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
_SLOT_ID = re.compile(r"^(?P<service>[A-Za-z0-9][\w.-]*_r\d+)\.(?P<slot>\d+)$")
_MEMORY = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def service_name(instance: str, app: str, process: str, release: int) -> str:
    """hello_web_r8; a non-default instance prefixes it (staging_hello_web_r8). Service names
    are global to the swarm, like container names to an engine."""
    name = f"{app}_{process}_r{release}"
    if instance and instance != defaults.INSTANCE:
        name = f"{re.sub(r'[^A-Za-z0-9_-]', '-', instance)}_{name}"
    return name


def service_of(spec: ContainerSpec) -> str:
    labels = spec.labels
    return service_name(
        labels.get(defaults.LABEL_INSTANCE, ""), labels.get(defaults.LABEL_APP, ""),
        labels.get(defaults.LABEL_PROCESS, ""), int(labels.get(defaults.LABEL_RELEASE, "0")),
    )


def slot_id(service: str, slot: int) -> str:
    return f"{service}.{slot}"


def parse_slot_id(value: str) -> tuple[str, int] | None:
    """("hello_web_r8", 2) for "hello_web_r8.2"; None for anything else (a container id)."""
    match = _SLOT_ID.match(value)
    return (match["service"], int(match["slot"])) if match else None


def is_slot_id(value: str) -> bool:
    return parse_slot_id(value) is not None


def memory_bytes(text: str | None) -> int | None:
    if not text:
        return None
    match = _MEMORY.match(text.strip())
    if not match:
        raise ValueError(f"bad memory size {text!r}")
    return int(match[1]) * _UNITS[match[2].lower()]


def restart_policy(policy: str) -> dict[str, Any]:
    """Docker's container policy in Swarm's words: no -> none, always/unless-stopped -> any,
    on-failure[:N] -> on-failure with at most N attempts."""
    name, _, count = policy.partition(":")
    condition = {"no": "none", "": "none", "always": "any", "unless-stopped": "any"}.get(name, name)
    return {
        "Condition": condition,
        "Delay": RESTART_DELAY_NS,
        "MaxAttempts": int(count) if count else 0,
    }


def command_args(command: str | tuple[str, ...] | None) -> list[str] | None:
    """Swarm's Args replace the image's CMD (as `docker run IMAGE CMD...`); its entrypoint stays."""
    if command is None:
        return None
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


def mounts(volumes: Sequence[str]) -> list[dict[str, Any]]:
    """Docker -v syntax ("/src:/dst[:ro]", "name:/dst") as Swarm mounts."""
    result = []
    for volume in volumes:
        source, target, *rest = volume.split(":")
        options = rest[0].split(",") if rest else []
        result.append({
            "Type": "bind" if source.startswith("/") else "volume",
            "Source": source,
            "Target": target,
            "ReadOnly": "ro" in options,
        })
    return result


def service_spec(spec: ContainerSpec, replicas: int, *, job: bool = False) -> dict[str, Any]:
    """The keyword arguments of `APIClient.create_service` for `spec` at `replicas` tasks (a
    `replicated-job` run once for a one-off). Plain dicts, as the Engine API takes them."""
    container: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{k}={v}" for k, v in spec.env.items()],
        # dockyard's labels go on the service only: plain-container listings never see tasks
        "Labels": {LABEL_SWARM: "job" if job else "app"},
        "StopGracePeriod": int(spec.stop_timeout * 1e9),
        "StopSignal": "SIGTERM",
    }
    args = command_args(spec.command)
    if args is not None:
        container["Args"] = args
    if spec.volumes:
        container["Mounts"] = mounts(spec.volumes)
    limits: dict[str, int] = {}
    if spec.memory:
        limits["MemoryBytes"] = memory_bytes(spec.memory) or 0
    if spec.cpus:
        limits["NanoCPUs"] = int(spec.cpus * 1e9)
    template: dict[str, Any] = {
        "ContainerSpec": container,
        # a task is placed only where its limits fit: reservations = limits
        "Resources": {"Limits": limits, "Reservations": dict(limits)} if limits else {},
        "RestartPolicy": restart_policy("no" if job else spec.restart),
        "Placement": {"Constraints": list(spec.placement)} if spec.placement else {},
    }
    if job:
        mode = {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    else:
        mode = {"Replicated": {"Replicas": replicas}}
    labels = dict(spec.labels)
    labels[LABEL_SWARM] = "job" if job else "app"
    kwargs: dict[str, Any] = {
        "task_template": template,
        "name": service_of(spec) if not job else job_name(spec.name),
        "labels": labels,
        "mode": mode,
    }
    if spec.ports:
        # host mode, no published port: each task gets a port Docker picks on its node, read
        # back from the task's PortStatus; the proxy reaches each task itself (no routing mesh)
        kwargs["endpoint_spec"] = {
            "Mode": "dnsrr",
            "Ports": [{"Protocol": "tcp", "TargetPort": p, "PublishMode": "host"} for p in spec.ports],
        }
    return kwargs


def job_name(container_name: str) -> str:
    """A one-off's service name: its container name with the dots Swarm names avoid."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", container_name)[:63]


def ipv4_ports(bindings: Mapping[str, Any]) -> dict[int, int]:
    """Container port -> IPv4 host port, from a container's NetworkSettings.Ports."""
    ports: dict[int, int] = {}
    for key, entries in bindings.items():
        for entry in entries or ():
            if ":" not in (entry.get("HostIp") or "") and entry.get("HostPort"):
                ports[int(key.split("/")[0])] = int(entry["HostPort"])
                break
    return ports


def _epoch(stamp: str | None) -> float | None:
    if not stamp or stamp.startswith("0001-"):
        return None
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]}+00:00").timestamp()


def current_task(tasks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The task that stands for a slot now: the newest one Swarm wants running, else the newest."""
    if not tasks:
        return None
    wanted = [t for t in tasks if t.get("DesiredState") in ("running", "ready", "complete")]
    pool = wanted or list(tasks)
    return max(pool, key=lambda t: (t.get("Version") or {}).get("Index", 0))


def task_state(task: Mapping[str, Any]) -> str:
    """dockyard's container status for a task: running, exited or created (on its way)."""
    state = str((task.get("Status") or {}).get("State", ""))
    if state == RUNNING:
        return "running"
    return "exited" if state in FINAL_STATES else "created"


def task_info(
    task: Mapping[str, Any],
    service_labels: Mapping[str, str],
    *,
    service: str,
    node_name: str = "",
    host: str = "127.0.0.1",
    node_ready: bool = True,
) -> ContainerInfo:
    """One task as the ContainerInfo of its slot (see the module's docstring)."""
    status = task.get("Status") or {}
    cstatus = status.get("ContainerStatus") or {}
    ports: dict[int, int] = {}
    for port in (status.get("PortStatus") or {}).get("Ports") or []:
        if port.get("PublishedPort"):
            ports[int(port["TargetPort"])] = int(port["PublishedPort"])
    state = task_state(task) if node_ready else "exited"  # a node that is down: its tasks too
    slot = int(task.get("Slot") or 0)
    labels = dict(service_labels)
    labels[defaults.LABEL_NODE] = node_name
    labels[LABEL_TASK] = str(task.get("ID", ""))
    exit_code = cstatus.get("ExitCode") if state == "exited" else None
    return ContainerInfo(
        id=slot_id(service, slot),
        name=container_name(
            labels.get(defaults.LABEL_APP, service), labels.get(defaults.LABEL_PROCESS, ""),
            slot, int(labels.get(defaults.LABEL_RELEASE, "0") or 0),
            labels.get(defaults.LABEL_INSTANCE, ""),
        ),
        labels=MappingProxyType(labels),
        status=state,
        exit_code=int(exit_code) if exit_code is not None else (None if state != "exited" else -1),
        started_at=_epoch(status.get("Timestamp")) if state == "running" else None,
        pid=int(cstatus.get("PID") or 0) if state == "running" else 0,
        ports=MappingProxyType(ports),
        host=host,
    )
