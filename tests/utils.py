"""Test helpers: a supervisor and its proxy on real Docker, and a constant-rate load.

The proxy-facing tests run the proxy as the daemon does by default: in worker processes
(`TEST_WORKERS`, 2 unless DOCKYARD_TEST_WORKERS says otherwise; 0 is the in-process proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from proxy import Proxy
from supervisor.config.loader import parse_config
from supervisor.daemon.dataplane import WorkerPool
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.spec import Config
from supervisor.runtime.docker import DockerRuntime
from supervisor.store.releases import StateStore

from .conftest import SESSION, TEST_LABELS

TEST_WORKERS = int(os.environ.get("DOCKYARD_TEST_WORKERS", "2"))


def make_config(tmp_path: Path, apps: dict[str, Any], **server: Any) -> Config:
    data = {
        "server": {"listen": "127.0.0.1:8080", "state_dir": str(tmp_path / "state"),
                   "instance": f"t{SESSION}-{tmp_path.name[-20:]}", **server},
        "apps": apps,
    }
    return parse_config(data, tmp_path / "dockyard.toml")


class LabellingRuntime(DockerRuntime):
    """The real Docker runtime, adding the test label so the session cleanup finds leftovers."""

    async def run(self, spec: Any) -> Any:  # type: ignore[override]
        import dataclasses

        labels = dict(spec.labels)
        labels.update(TEST_LABELS)
        return await super().run(dataclasses.replace(spec, labels=labels))


@dataclass
class Stack:
    sup: Supervisor
    proxy: Proxy | WorkerPool
    state: StateStore
    config: Config

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def figures(self) -> None:
        """Workers' counters are collected every POLL_PERIOD: collect them now."""
        if isinstance(self.proxy, WorkerPool):
            await self.proxy.refresh()


@contextlib.asynccontextmanager
async def stack(config: Config, docker_client: Any, workers: int = TEST_WORKERS) -> AsyncIterator[Stack]:
    """`workers` proxy worker processes (0: the proxy in this process, for tests that look
    inside it)."""
    state = StateStore(config.server.state_dir)
    proxy: Proxy | WorkerPool
    if workers:
        proxy = WorkerPool(config.proxy, workers, config.server.state_dir / "workers")
    else:
        proxy = Proxy(config.proxy)
    await proxy.start("127.0.0.1", 0)
    runtime = LabellingRuntime(docker_client)
    sup = Supervisor(config, runtime, proxy, state)
    try:
        if isinstance(proxy, WorkerPool):
            await proxy.launch()
        yield Stack(sup, proxy, state, config)
    finally:
        await sup.retirer.close()
        await proxy.stop(1.0)
        for info in await runtime.list({"dockyard.instance": config.server.instance}):
            await runtime.remove(info.id)
        state.close()


@dataclass
class Load:
    """Open-loop-ish load: `rate` requests per second spread over `workers` loops."""

    url: str
    host: str
    rate: float = 200.0
    workers: int = 8
    results: list[tuple[float, float, int, str]] = field(default_factory=list)  # start, end, status, body
    errors: list[tuple[float, str]] = field(default_factory=list)
    _stop: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.workers * 2, force_close=False)
        )
        interval = self.workers / self.rate
        for i in range(self.workers):
            self._tasks.append(asyncio.ensure_future(self._loop(interval, i * interval / self.workers)))
        return self

    async def _loop(self, interval: float, offset: float) -> None:
        await asyncio.sleep(offset)
        next_at = time.monotonic()
        while not self._stop:
            start = time.monotonic()
            try:
                async with self._session.get(
                    self.url, headers={"Host": self.host}, timeout=aiohttp.ClientTimeout(total=10)
                ) as resp:
                    body = await resp.text()
                    self.results.append((start, time.monotonic(), resp.status, body))
            except Exception as exc:  # every failure is recorded and asserted on
                self.errors.append((start, f"{exc.__class__.__name__}: {exc}"))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()

    @property
    def failures(self) -> list[Any]:
        bad = [r for r in self.results if r[2] != 200]
        return bad + self.errors  # type: ignore[operator]


async def get(url: str, host: str, timeout: float = 10) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Host": host}, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.text()
