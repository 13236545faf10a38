"""The daemon's event bus: what deploys (and retires) report, for whoever listens.

The deploy's progress events (`DeployReport.emit`: deploying, step start/done/failed, deployed,
failed) and the retirer's `retired` are published here as well as to the stream of the client
that asked for the deploy, so a reader such as the dashboard sees every deploy: the ones the CLI
started, a `git push`, a reload, the daemon starting an app.

Publishing never blocks and never fails the publisher: each subscriber has a bounded queue, and
a subscriber that does not keep up loses its oldest events (counted in `dropped`). The bus also
keeps the last `keep` events, so a page opened after a deploy can still draw its markers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

DEFAULT_KEEP = 2000  # recent events kept for late readers
DEFAULT_QUEUE = 1000  # events a slow subscriber may lag behind before it loses the oldest

Event = Mapping[str, Any]


class Subscription:
    """Events published after `subscribe()`, optionally of one app. `async for` or `get()`."""

    def __init__(self, bus: EventBus, app: str | None, size: int) -> None:
        self._bus = bus
        self.app = app
        self._queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self.app is not None and event.get("app") != self.app:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus:
    def __init__(self, keep: int = DEFAULT_KEEP, queue_size: int = DEFAULT_QUEUE) -> None:
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[Subscription] = set()
        self._queue_size = queue_size

    def publish(self, event: Event) -> None:
        """Stamp `event` with `time` (seconds since the epoch) unless it has one; hand it on."""
        stamped = event if "time" in event else {**event, "time": time.time()}
        self._recent.append(stamped)
        for sub in list(self._subscribers):
            sub._offer(stamped)

    def subscribe(self, app: str | None = None, size: int | None = None) -> Subscription:
        sub = Subscription(self, app, size or self._queue_size)
        self._subscribers.add(sub)
        return sub

    def recent(self, app: str | None = None, since: float | None = None) -> list[Event]:
        """The kept events, oldest first; of one app, and at or after `since`, when given."""
        return [
            e for e in self._recent
            if (app is None or e.get("app") == app) and (since is None or e["time"] >= since)
        ]

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
