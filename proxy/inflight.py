"""In-flight tracking per target, and the drain that waits for (or cancels) it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

log = logging.getLogger("dockyard.proxy")


class Flight:
    """One request (or WebSocket) claimed on one target. `cancel` ends it at a drain timeout."""

    __slots__ = ("target", "app", "cancel", "websocket", "cancelled")

    def __init__(self, target: str, app: str, cancel: Callable[[], None]) -> None:
        self.target = target
        self.app = app
        self.cancel = cancel
        self.websocket = False
        self.cancelled = False


class InflightTracker:
    """Counts flights per target; claim() is synchronous so lookup+claim cannot interleave a drain."""

    def __init__(self) -> None:
        self._flights: dict[str, set[Flight]] = {}
        self._draining: dict[str, int] = {}
        self._waiters: list[tuple[frozenset[str], asyncio.Event]] = []

    def is_draining(self, target: str) -> bool:
        return target in self._draining

    def count(self, target: str) -> int:
        flights = self._flights.get(target)
        return len(flights) if flights else 0

    def snapshot(self) -> dict[str, int]:
        return {t: len(f) for t, f in self._flights.items() if f}

    def claim(self, target: str, app: str, cancel: Callable[[], None]) -> Flight:
        flight = Flight(target, app, cancel)
        flights = self._flights.get(target)
        if flights is None:
            flights = self._flights[target] = set()
        flights.add(flight)
        return flight

    def release(self, flight: Flight) -> None:
        flights = self._flights.get(flight.target)
        if flights is None or flight not in flights:
            return
        flights.discard(flight)
        if not flights:
            del self._flights[flight.target]
            if self._waiters:
                for targets, event in self._waiters:
                    if not event.is_set() and not any(self._flights.get(t) for t in targets):
                        event.set()

    async def drain(self, targets: Iterable[str], timeout: float) -> int:
        """Refuse new claims on `targets`, wait for their flights, cancel what is left at the timeout.

        Returns how many flights were cancelled. The draining mark is lifted when this returns.
        """
        wanted = frozenset(targets)
        for t in wanted:
            self._draining[t] = self._draining.get(t, 0) + 1
        event = asyncio.Event()
        entry = (wanted, event)
        self._waiters.append(entry)
        cancelled = 0
        try:
            if not any(self._flights.get(t) for t in wanted):
                event.set()
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                left = [f for t in wanted for f in self._flights.get(t, ())]
                for flight in left:
                    if not flight.cancelled:
                        flight.cancelled = True
                        cancelled += 1
                        flight.cancel()
                # Give the cancelled handlers one short moment to answer and release.
                if left:
                    event.clear()
                    if not any(self._flights.get(t) for t in wanted):
                        event.set()
                    try:
                        await asyncio.wait_for(event.wait(), 1.0)
                    except TimeoutError:
                        pass
        finally:
            self._waiters.remove(entry)
            for t in wanted:
                n = self._draining[t] - 1
                if n:
                    self._draining[t] = n
                else:
                    del self._draining[t]
        return cancelled
