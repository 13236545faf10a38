"""Helpers for the scheduler tests: configs, a switchable image_of, waiting."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.options import ProxyOptions
from supervisor.model.spec import AppSpec, Config, CronSpec, ServerSpec
from tests.conftest import TEST_LABELS

EXTRA_LABELS = TEST_LABELS


def make_config(
    state_dir: Path, *tasks: CronSpec, instance: str | None = None, app: str = "hello"
) -> Config:
    return Config(
        path=state_dir / "dockyard.toml",
        server=ServerSpec(
            state_dir=state_dir,
            instance=instance or f"dytest-{secrets.token_hex(3)}",
            timezone="UTC",
        ),
        proxy=ProxyOptions(),
        apps={app: AppSpec(name=app, cron=tasks, stop_timeout=1.0, env={"GREETING": "hi"})},
    )


class Releases:
    """image_of: what the supervisor would say is the current release of each app."""

    def __init__(self, image: str | None, release: int = 1) -> None:
        self.current: tuple[str, int] | None = (image, release) if image else None

    def deploy(self, image: str) -> None:
        number = self.current[1] + 1 if self.current else 1
        self.current = (image, number)

    def __call__(self, app: str) -> tuple[str, int] | None:
        return self.current


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")
