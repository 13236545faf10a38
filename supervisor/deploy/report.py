"""What a deploy did, step by step, and the events the CLI streams while it runs."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor.model.spec import AppSpec
from supervisor.ops.events import EventBus

Progress = Callable[[Mapping[str, Any]], None]


@dataclass
class DeployReport:
    """What a deploy did, step by step; also what the CLI streams."""

    app: str
    release: int = 0
    image: str = ""
    ok: bool = False
    reason: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    progress: Progress | None = None
    warnings: list[str] = field(default_factory=list)
    events: EventBus | None = None  # the daemon's bus: every deploy's events, for the dashboard

    def emit(self, event: str, **fields: Any) -> None:
        message = {"event": event, "app": self.app, "release": self.release, **fields}
        if self.events is not None:
            self.events.publish(message)
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress(message)

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        start = time.monotonic()
        self.emit("step", step=name, status="start")
        try:
            yield
        except BaseException as exc:
            seconds = round(time.monotonic() - start, 3)
            self.steps.append({"step": name, "seconds": seconds, "ok": False})
            self.emit("step", step=name, status="failed", seconds=seconds, error=str(exc))
            raise
        seconds = round(time.monotonic() - start, 3)
        self.steps.append({"step": name, "seconds": seconds, "ok": True})
        self.emit("step", step=name, status="done", seconds=seconds)


def snapshot(app: AppSpec) -> dict[str, Any]:
    """A JSON-able copy of the app spec, kept with the release."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return dict(plain(app))
