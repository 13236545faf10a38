"""The real Runtime: Docker through the Docker SDK, with every blocking call off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import docker.errors

from supervisor.model import defaults
from supervisor.model.errors import RuntimeFailure
from supervisor.runtime.builds import BuildRequest, build_image
from supervisor.runtime.engine import EngineClient, stream_in_thread
from supervisor.runtime.group import run_each
from supervisor.runtime.logstream import follow_logs
from supervisor.runtime.outputtail import tail_of
from supervisor.runtime.protocol import ContainerInfo, ContainerSpec, OneOffResult, RuntimeEvent

PORT_RETRIES = 3
PORT_RACE_MESSAGES = ("address already in use", "port is already allocated")
log = logging.getLogger("dockyard.supervisor")


def _command(command: str | tuple[str, ...] | None) -> list[str] | None:
    if command is None:
        return None
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


def _restart_policy(policy: str) -> dict[str, Any] | None:
    if policy in ("", "no"):
        return None
    name, _, count = policy.partition(":")
    result: dict[str, Any] = {"Name": name}
    if name == "on-failure" and count:
        result["MaximumRetryCount"] = int(count)
    return result


def split_image(image: str) -> tuple[str, str | None]:
    """("registry:5000/team/app", "1.4") of "registry:5000/team/app:1.4"; a digest stays whole."""
    if "@" in image:
        return image, None
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, "latest"


def _epoch(stamp: str | None) -> float | None:
    if not stamp or stamp.startswith("0001-"):
        return None
    # Docker gives nanoseconds: 2026-11-27T20:43:11.642903539Z
    head, _, frac = stamp.rstrip("Z").partition(".")
    text = f"{head}.{(frac or '0')[:6]}+00:00"
    return datetime.fromisoformat(text).timestamp()


def _info(attrs: Mapping[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    ports: dict[int, int] = {}
    for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if bindings:
            with contextlib.suppress(ValueError, KeyError, IndexError):
                ports[int(key.split("/")[0])] = int(bindings[0]["HostPort"])
    return ContainerInfo(
        id=attrs["Id"],
        name=str(attrs.get("Name", "")).lstrip("/"),
        labels=MappingProxyType(dict(config.get("Labels") or {})),
        status=str(state.get("Status", "unknown")),
        exit_code=state.get("ExitCode") if state.get("Status") in ("exited", "dead") else None,
        started_at=_epoch(state.get("StartedAt")),
        restart_count=int(attrs.get("RestartCount") or 0),
        pid=int(state.get("Pid") or 0),
        ports=MappingProxyType(ports),
    )


async def exec_within(call: Awaitable[OneOffResult], timeout: float) -> OneOffResult:
    """A command check's result, or why there is none: it timed out, the container is gone."""
    try:
        return await asyncio.wait_for(call, timeout)
    except TimeoutError:
        return OneOffResult(-1, f"command timed out after {timeout:g}s", timed_out=True)
    except docker.errors.NotFound:
        return OneOffResult(-1, "container is gone")


class DockerRuntime(EngineClient):
    """Runtime backed by the local Docker engine (the client and `_call`: runtime/engine.py)."""

    def _create_kwargs(self, spec: ContainerSpec) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "command": _command(spec.command),
            "environment": dict(spec.env),
            "labels": dict(spec.labels),
            "detach": True,
            "stop_signal": "SIGTERM",
            "volumes": list(spec.volumes) or None,
        }
        if spec.network == "host":
            kwargs["network_mode"] = "host"
        elif spec.ports:
            kwargs["ports"] = {f"{p}/tcp": ("127.0.0.1", None) for p in spec.ports}
        if spec.memory:
            kwargs["mem_limit"] = spec.memory
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.cpu_shares:
            kwargs["cpu_shares"] = spec.cpu_shares
        policy = _restart_policy(spec.restart)
        if policy:
            kwargs["restart_policy"] = policy
        if spec.tty:
            kwargs.update(tty=True, stdin_open=True)
        return kwargs

    def _create_sync(self, spec: ContainerSpec) -> ContainerInfo:
        kwargs = self._create_kwargs(spec)
        kwargs.pop("detach")
        container = self.client.containers.create(spec.image, **kwargs)
        container.reload()
        return _info(container.attrs)

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        try:
            info: ContainerInfo = await self._call(self._create_sync, spec)
        except docker.errors.NotFound as exc:
            raise RuntimeFailure(f"image {spec.image!r} not found: {exc.explanation}") from exc
        return info

    def _run_sync(self, spec: ContainerSpec) -> ContainerInfo:
        container = self.client.containers.run(spec.image, **self._create_kwargs(spec))
        container.reload()
        return _info(container.attrs)

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start a container. Docker allocates published host ports from the same
        ephemeral range as outgoing connections, so a start can lose a race for a port ("address
        already in use"): the container is removed and started again, up to PORT_RETRIES times."""
        for attempt in range(PORT_RETRIES + 1):
            try:
                info: ContainerInfo = await self._call(self._run_sync, spec)
            except docker.errors.NotFound as exc:
                raise RuntimeFailure(f"image {spec.image!r} not found: {exc.explanation}") from exc
            except RuntimeFailure as exc:
                text = str(exc)
                if attempt < PORT_RETRIES and any(m in text for m in PORT_RACE_MESSAGES):
                    log.warning("port race container=%s attempt=%d: retrying", spec.name, attempt + 1)
                    await self.remove(spec.name)
                    continue
                raise
            return info
        raise AssertionError("unreachable")

    async def run_group(self, specs: Sequence[ContainerSpec]) -> list[ContainerInfo]:
        """Each container on its own, in parallel; all or nothing (runtime/group.py)."""
        return await run_each(specs, self.run, self.remove)

    def _inspect_sync(self, container_id: str) -> ContainerInfo | None:
        try:
            return _info(self.client.api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        result: ContainerInfo | None = await self._call(self._inspect_sync, container_id)
        return result

    def _list_sync(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        found = self.client.api.containers(all=True, filters=filters, quiet=True)
        infos = []
        for item in found:
            info = self._inspect_sync(item["Id"])
            if info is not None:
                infos.append(info)
        return infos

    async def list(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        result: list[ContainerInfo] = await self._call(self._list_sync, labels)
        return result

    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None:
        with contextlib.suppress(docker.errors.NotFound, RuntimeFailure):
            await self._call(self.client.api.kill, container_id, signal=signal)

    async def stop(self, container_id: str, timeout: float) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            await self._call(self.client.api.stop, container_id, timeout=int(timeout))

    async def start(self, container_id: str) -> ContainerInfo | None:
        """Start a stopped container again (a restart by dockyard's policy); its new state."""
        try:
            await self._call(self.client.api.start, container_id)
        except docker.errors.NotFound:
            return None
        return await self.inspect(container_id)

    async def no_restart(self, container_id: str) -> None:
        """Clear the restart policy, so that a container being retired is never restarted."""
        with contextlib.suppress(docker.errors.NotFound, RuntimeFailure):
            await self._call(
                self.client.api.update_container, container_id, restart_policy={"Name": "no"}
            )

    async def remove(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                await self._call(self.client.api.remove_container, container_id, force=True)
            except RuntimeFailure as exc:
                if "already in progress" not in str(exc):
                    raise

    def _exec_sync(self, container_id: str, command: tuple[str, ...]) -> OneOffResult:
        """Run `command` in the container; keep the first CHECK_OUTPUT_MAX bytes of its output."""
        api = self.client.api
        exec_id = api.exec_create(container_id, list(command), stdout=True, stderr=True)["Id"]
        kept = bytearray()
        for chunk in api.exec_start(exec_id, stream=True):
            if len(kept) < defaults.CHECK_OUTPUT_MAX:
                kept += chunk[: defaults.CHECK_OUTPUT_MAX - len(kept)]
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        return OneOffResult(int(exit_code or 0), bytes(kept).decode(errors="replace"))

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> OneOffResult:
        return await exec_within(self._call(self._exec_sync, container_id, command), timeout)

    async def run_oneoff(self, spec: ContainerSpec, timeout: float | None) -> OneOffResult:
        """Run a container to completion; return its exit code and output; always remove it."""
        info = await self.run(spec)
        timed_out = False
        try:
            try:
                status = await asyncio.wait_for(
                    self._call(self.client.api.wait, info.id), timeout
                )
                exit_code = int(status.get("StatusCode", -1))
            except TimeoutError:
                timed_out = True
                await self.stop(info.id, timeout=spec.stop_timeout)
                exit_code = -1
            output = await self._call(self._logs_tail, info.id, defaults.ONEOFF_OUTPUT_KB * 1024)
            return OneOffResult(exit_code, output, timed_out)
        finally:
            await self.remove(info.id)

    def _logs_tail(self, container_id: str, limit: int) -> str:
        """The last `limit` bytes of a container's output, streamed (never read whole)."""
        return tail_of(self.client.api.logs(container_id, stdout=True, stderr=True, stream=True), limit)

    async def image_exists(self, image: str) -> bool:
        try:
            await self._call(self.client.api.inspect_image, image)
        except docker.errors.NotFound:
            return False
        return True

    async def pull(
        self, image: str, auth: Mapping[str, str] | None, progress: Callable[[Mapping[str, str]], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        repository, tag = split_image(image)

        def report(event: Mapping[str, str]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(progress, event)

        def pull_sync() -> None:
            # No auth_config: docker-py reads ~/.docker/config.json (and credential helpers).
            kwargs: dict[str, Any] = {"auth_config": dict(auth)} if auth else {}
            seen: dict[str, str] = {}
            for line in self.client.api.pull(repository, tag=tag, stream=True, decode=True, **kwargs):
                if line.get("error"):
                    raise RuntimeFailure(str(line["error"]).strip())
                status, layer = str(line.get("status") or ""), str(line.get("id") or "")
                if status and seen.get(layer) != status:  # a change, not every byte count
                    seen[layer] = status
                    report({"status": status, "id": layer})

        try:
            await asyncio.to_thread(pull_sync)
        except docker.errors.APIError as exc:
            raise RuntimeFailure(str(exc.explanation or exc)) from exc
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(str(exc)) from exc
    async def remove_image(self, image: str) -> bool:
        """Kept when any container was created under this name. Otherwise the tag is removed,
        never forced: Docker itself refuses (409) to delete an image a container (of another
        tag of the same image, say) or a child image still needs; then only the tag goes."""
        try:
            users = await self._call(self.client.api.containers, all=True,
                                     filters={"ancestor": image})
            if any(u.get("Image") == image for u in users):
                return False
            await self._call(self.client.api.remove_image, image)
        except docker.errors.NotFound:
            return True
        except RuntimeFailure as exc:  # a container took it meanwhile (409 conflict)
            log.info("image kept image=%s reason=%s", image, exc)
            return False
        return True

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        """Container events for containers carrying `labels`, until the consumer stops."""
        filters = {
            "type": "container",
            "label": [f"{k}={v}" if v else k for k, v in labels.items()],
        }
        stream = await self._call(self.client.api.events, decode=True, filters=filters)
        async for raw in stream_in_thread(stream, "docker-events"):
            attrs = (raw.get("Actor") or {}).get("Attributes") or {}
            code = attrs.get("exitCode")
            yield RuntimeEvent(
                action=str(raw.get("Action") or raw.get("status") or ""),
                container_id=str(raw.get("id") or ""),
                labels=MappingProxyType(dict(attrs)),
                exit_code=int(code) if code is not None else None,
            )

    async def follow_output(self, container_id: str) -> AsyncIterator[bytes]:
        """The container's output (stdout and stderr) from its start, as it comes, until it stops."""
        try:
            stream = await self._call(follow_logs, self.client.api, container_id)
        except (docker.errors.NotFound, RuntimeFailure):  # gone already: nothing to follow
            return
        async for chunk in stream_in_thread(stream, f"logs-{container_id[:12]}"):
            yield chunk

    async def build(self, context: bytes | Path, request: BuildRequest) -> str:
        return await build_image(self.client, context, request)
