"""One Runtime that hands each call to the app's scheduler: containers or Swarm services.

The deploy flow, the retirer, the watcher and cron keep talking to one `Runtime`; this object
picks the implementation per call: by `ContainerSpec.scheduler` for what starts something, by
the id's shape for the rest (a swarm slot is "SERVICE.SLOT", runtime/services.py; a container
id is 64 hex digits), and merges both for listings and events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from supervisor.model.errors import RuntimeFailure
from supervisor.model.spec import Config
from supervisor.runtime.builds import BuildRequest
from supervisor.runtime.protocol import (
    ContainerInfo,
    ContainerSpec,
    OneOffResult,
    Runtime,
    RuntimeEvent,
)
from supervisor.runtime.services import is_slot_id


class SelectRuntime:
    def __init__(self, docker: Runtime, swarm: Runtime | None = None) -> None:
        self.docker = docker
        self.swarm = swarm

    def for_spec(self, spec: ContainerSpec) -> Runtime:
        if spec.scheduler != "swarm":
            return self.docker
        if self.swarm is None:
            raise RuntimeFailure(f"{spec.name}: scheduler = \"swarm\" but dockyard runs without Swarm")
        return self.swarm

    def _for_id(self, container_id: str) -> Runtime:
        if self.swarm is not None and is_slot_id(container_id):
            return self.swarm
        return self.docker

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        return await self.for_spec(spec).run(spec)

    async def run_group(self, specs: Sequence[ContainerSpec]) -> list[ContainerInfo]:
        if not specs:
            return []
        return await self.for_spec(specs[0]).run_group(specs)

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        return await self.for_spec(spec).create(spec)

    async def run_oneoff(self, spec: ContainerSpec, timeout: float | None) -> OneOffResult:
        return await self.for_spec(spec).run_oneoff(spec, timeout)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return await self._for_id(container_id).inspect(container_id)

    async def list(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        found = await self.docker.list(labels)
        if self.swarm is not None:
            found += await self.swarm.list(labels)
        return found

    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None:
        await self._for_id(container_id).kill(container_id, signal)

    async def stop(self, container_id: str, timeout: float) -> None:
        await self._for_id(container_id).stop(container_id, timeout)

    async def start(self, container_id: str) -> ContainerInfo | None:
        return await self._for_id(container_id).start(container_id)

    async def no_restart(self, container_id: str) -> None:
        await self._for_id(container_id).no_restart(container_id)

    async def remove(self, container_id: str) -> None:
        await self._for_id(container_id).remove(container_id)

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> OneOffResult:
        return await self._for_id(container_id).exec(container_id, command, timeout)

    async def nodes(self) -> Sequence[Any]:
        """The Swarm's nodes (runtime/swarmread.py NodeInfo)."""
        lister = getattr(self.swarm, "nodes", None)
        if lister is None:
            raise RuntimeFailure("this daemon runs without Swarm")
        found: Sequence[Any] = await lister()
        return found

    async def image_exists(self, image: str) -> bool:
        """On this engine; with Swarm, also in a registry the nodes pull from."""
        if await self.docker.image_exists(image):
            return True
        return self.swarm is not None and await self.swarm.image_exists(image)

    async def pull(
        self, image: str, auth: Mapping[str, str] | None, progress: Callable[[Mapping[str, str]], None]
    ) -> None:
        """On this engine, for either scheduler (Swarm nodes pull from the registry themselves)."""
        await self.docker.pull(image, auth, progress)

    async def build(self, context: bytes | Path, request: BuildRequest) -> str:
        """On this engine, for either scheduler (as pull)."""
        return await self.docker.build(context, request)

    async def follow_output(self, container_id: str) -> AsyncIterator[bytes]:
        async for chunk in self._for_id(container_id).follow_output(container_id):
            yield chunk

    async def remove_image(self, image: str) -> bool:
        """On this engine, where builds and pulls put images (Swarm nodes keep their own)."""
        return await self.docker.remove_image(image)

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        """Both streams merged; either one failing ends this one (the watcher reconnects)."""
        if self.swarm is None:
            async for event in self.docker.events(labels):
                yield event
            return
        queue: asyncio.Queue[RuntimeEvent | BaseException] = asyncio.Queue()

        async def pump(source: Runtime) -> None:
            try:
                async for event in source.events(labels):
                    queue.put_nowait(event)
                queue.put_nowait(RuntimeFailure("event stream ended"))
            except Exception as exc:
                queue.put_nowait(exc)

        tasks = [asyncio.ensure_future(pump(r)) for r in (self.docker, self.swarm)]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)


def uses_swarm(config: Config) -> bool:
    return any(app.scheduler == "swarm" for app in config.apps.values())


async def build_runtime(config: Config, docker: Runtime | None = None) -> Runtime:
    """The daemon's runtime: Docker, plus Swarm when an app asks for it (then the engine must be
    a Swarm manager, or RuntimeFailure says how to make it one). An app switched to swarm by a
    reload needs a daemon restart."""
    from supervisor.runtime.docker import DockerRuntime
    from supervisor.runtime.swarm import SwarmRuntime

    base = docker if docker is not None else DockerRuntime()
    if not uses_swarm(config):
        return base
    swarm = SwarmRuntime(getattr(base, "client", None))
    await swarm.check_manager()
    return SelectRuntime(base, swarm)
