"""Background tasks a component owns: started with `spawn`, all cancelled by `close` at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class TaskSet:
    """Keeps a reference to each task until it ends; `on_error` hears of a task that raised."""

    def __init__(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_error = on_error

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.track(asyncio.ensure_future(coro))

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep (and on close, cancel) a task started elsewhere."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._on_error is not None and not task.cancelled() and task.exception() is not None:
            self._on_error(task.exception())  # type: ignore[arg-type]

    async def close(self) -> None:
        """Cancel every task and wait for each to end."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def wait_idle(self) -> None:
        """Wait until no task is left, those started meanwhile included."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
