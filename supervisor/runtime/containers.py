"""Pure functions that turn an app spec into container specs: names, env, labels, ports."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from types import MappingProxyType

from supervisor.model import defaults
from supervisor.model.spec import AppSpec, HealthCheckSpec
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec

LABEL_PORT = "dockyard.port"  # the port the app listens on inside (host network: on the host)


def container_name(app: str, process: str, index: int, release: int, instance: str = "") -> str:
    """Readable and unique per release: hello.web.1.r7. Docker names are global to the engine,
    so a daemon with a non-default `instance` prefixes it: staging.hello.web.1.r7."""
    name = f"{app}.{process}.{index}.r{release}"
    if instance and instance != defaults.INSTANCE:
        name = f"{instance}.{name}"
    return name


def base_labels(instance: str, app: str, release: int, process: str, role: str) -> dict[str, str]:
    return {
        defaults.LABEL_INSTANCE: instance,
        defaults.LABEL_APP: app,
        defaults.LABEL_RELEASE: str(release),
        defaults.LABEL_PROCESS: process,
        defaults.LABEL_ROLE: role,
    }


def app_env(app: AppSpec, release: int, process: str, port: int, index: int) -> dict[str, str]:
    env = dict(app.env)
    env.update(
        {
            "PORT": str(port),
            "DOCKYARD_APP": app.name,
            "DOCKYARD_RELEASE": str(release),
            "DOCKYARD_PROCESS_TYPE": process,
            "DYNO": f"{process}.{index}",  # as Heroku and Dokku set it
        }
    )
    return env


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a host-network container's $PORT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_ports(checks: tuple[HealthCheckSpec, ...], app_port: int) -> tuple[int, ...]:
    ports = {app_port}
    ports.update(c.port for c in checks if c.port)
    return tuple(sorted(ports))


def process_spec(
    app: AppSpec,
    *,
    image: str,
    instance: str,
    release: int,
    process: str,
    index: int,
) -> ContainerSpec:
    """The ContainerSpec of process `process` number `index` of `release`."""
    proc = app.processes[process]
    is_web = process == defaults.WEB_PROCESS
    port = app.port
    if app.network == "host" and is_web:
        port = free_port()
    labels = base_labels(instance, app.name, release, process, "app")
    labels[LABEL_PORT] = str(port)
    ports: tuple[int, ...] = ()
    if is_web and app.network == "bridge":
        ports = check_ports(app.healthchecks.get(process, ()), app.port)
    return ContainerSpec(
        name=container_name(app.name, process, index, release, instance),
        image=image,
        command=proc.command,
        env=MappingProxyType(app_env(app, release, process, port, index)),
        labels=MappingProxyType(labels),
        network=app.network,
        ports=ports,
        memory=app.limits.memory,
        cpus=app.limits.cpus,
        volumes=app.volumes,
        # docker: dockyard applies app.restart itself (deploy/watch.py); swarm: Swarm does
        restart=app.restart if app.scheduler == "swarm" else "no",
        stop_timeout=app.stop_timeout,
        scheduler=app.scheduler,
        placement=app.placement,
    )


def oneoff_spec(
    app: AppSpec, *, image: str, instance: str, release: int, role: str,
    command: str | tuple[str, ...] | None, suffix: str,
    env: Mapping[str, str] | None = None, tty: bool = False, process: str | None = None,
) -> ContainerSpec:
    """A one-off container (predeploy, postdeploy, cron, `dockyard run`) with the app's env,
    limits, volumes and network; `env` over the app's, `process`: whose $DYNO it gets."""
    labels = base_labels(instance, app.name, release, role, "oneoff")
    prefix = f"{instance}." if instance and instance != defaults.INSTANCE else ""
    return ContainerSpec(
        name=f"{prefix}{app.name}.{role}.{suffix}",
        image=image,
        command=command,
        env=MappingProxyType({**app_env(app, release, process or role, app.port, 1), **(env or {})}),
        tty=tty,
        labels=MappingProxyType(labels),
        network=app.network,
        memory=app.limits.memory,
        cpus=app.limits.cpus,
        cpu_shares=defaults.ONEOFF_CPU_SHARES,  # a busy box serves requests before cron jobs
        volumes=app.volumes,
        stop_timeout=app.stop_timeout,
        scheduler=app.scheduler,
        placement=app.placement,
    )


def target_of(info: ContainerInfo, app_port: int, network: str) -> str | None:
    """The proxy target ("127.0.0.1:PORT"; a swarm task: its node's address) of a web container,
    or None if it has no port."""
    if network == "host":
        port = info.labels.get(LABEL_PORT)
        return f"{info.host}:{port}" if port else None
    host_port = info.ports.get(app_port)
    return f"{info.host}:{host_port}" if host_port else None


def scales(app: AppSpec, overrides: Mapping[str, int]) -> dict[str, int]:
    """Process type -> count: the config's scale, with `dockyard scale` overrides on top."""
    result = {name: proc.scale for name, proc in app.processes.items()}
    for name, count in overrides.items():
        if name in result:
            result[name] = count
    return result
