"""The swaps of a loadtest: each one a deploy streamed from the control API, and their schedule.

A swap is `dockyard restart APP` (the default), or with an image, a deploy of it and then a
rollback, alternately. The next action follows what serves: after a failed deploy the app is
still on its old release, so the next swap deploys the image again (a rollback from there
would go back one release further than where the loadtest started).

Times are `time.monotonic()` on receipt of the daemon's events: `started` before the request,
`swapped` when the `step` event with `step=swap` arrives, `finished` at the stream's `result`.
The daemon runs a deploy to its end even when this client goes away, so a swap in flight when
Ctrl-C comes is read to its end, never cut.

Windows (what counts as "in the swap" for the report):
    deploy   [started, finished + WINDOW_AFTER]
    retire   [retire - WINDOW_BEFORE, retire + WINDOW_AFTER], retire = switch + retire_after
             (measured only when retire_after <= RETIRE_WAIT_MAX; longer waits end after the run)
Swap i is due at t0 + duration * (i + 1) / (swaps + 1), but never before MIN_STEADY seconds
after the previous swap's windows closed; the run ends MIN_STEADY after the last window, or at
t0 + duration, whichever is later. So each swap has steady latency on both sides.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from supervisor.model.errors import ControlError

SwapKind = Literal["restart", "deploy", "rollback"]

WARMUP = 1.0  # seconds at the start: counted, not in the latency phases
WINDOW_BEFORE = 0.5
WINDOW_AFTER = 1.0
MIN_STEADY = 1.0  # seconds of steady load between two swaps' windows, and after the last
RETIRE_WAIT_MAX = 30.0  # a retire further than this after the switch is not waited for


@dataclass(slots=True)
class Swap:
    """One deploy, restart or rollback, as seen from the client."""

    index: int  # 1-based
    kind: SwapKind
    started: float
    image: str | None = None
    release: int | None = None
    swapped: float | None = None
    finished: float | None = None
    ok: bool = False
    reason: str = ""
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds, as the daemon timed it
    retire_at: float | None = None
    interrupted: bool = False  # Ctrl-C came while it ran; it was left to finish

    def windows(self) -> list[tuple[float, float]]:
        end = self.finished if self.finished is not None else self.started
        spans = [(self.started, end + WINDOW_AFTER)]
        if self.retire_at is not None:
            spans.append((self.retire_at - WINDOW_BEFORE, self.retire_at + WINDOW_AFTER))
        return spans

    def quiet_from(self) -> float:
        """When this swap's last window closes."""
        return max(hi for _, hi in self.windows())


def in_windows(t: float, windows: Iterable[tuple[float, float]]) -> bool:
    return any(lo <= t <= hi for lo, hi in windows)


def endpoint(app: str, kind: SwapKind, image: str | None) -> tuple[str, dict[str, Any]]:
    body = {"image": image} if kind == "deploy" and image else {}
    return f"/v1/apps/{app}/{kind}", body


def perform(client: Any, app: str, index: int, kind: SwapKind, image: str | None,
            retire_after: float, now: Callable[[], float] = time.monotonic) -> Swap:
    """Run one swap through the control API and read its event stream to the end."""
    swap = Swap(index, kind, now(), image=image)
    path, body = endpoint(app, kind, image)
    try:
        for event in client.stream(path, body):
            name = event.get("event")
            if name == "deploying":
                swap.release, swap.image = event.get("release"), event.get("image")
            elif name == "step" and event.get("status") in ("done", "failed"):
                step = str(event.get("step"))
                swap.steps[step] = float(event.get("seconds") or 0.0)
                if step == "swap" and event.get("status") == "done":
                    swap.swapped = now()
            elif name == "failed":
                swap.reason = str(event.get("reason") or "")
            elif name == "result":
                swap.ok = bool(event.get("ok"))
                swap.release = event.get("release") or swap.release
                swap.reason = str(event.get("reason") or swap.reason)
    except (ControlError, OSError, http.client.HTTPException) as exc:
        swap.reason = str(exc) or exc.__class__.__name__
        swap.ok = False
    swap.finished = now()
    if swap.ok and swap.swapped is None:  # a daemon that streams no swap step
        swap.swapped = swap.finished
    if not swap.ok and not swap.reason:
        swap.reason = "the event stream ended without a result"
    if swap.ok and swap.swapped is not None and retire_after <= RETIRE_WAIT_MAX:
        swap.retire_at = swap.swapped + retire_after
    return swap


class Driver:
    """Runs `count` swaps at their times while the load runs; `stop` (set by Ctrl-C) ends the
    schedule. `log` gets one line per swap."""

    def __init__(self, client: Any, app: str, count: int, *, image: str | None = None,
                 retire_after: float = 0.0, stop: threading.Event | None = None,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.client, self.app, self.count, self.image = client, app, count, image
        self.retire_after = retire_after
        self.stop = stop or threading.Event()
        self.log = log
        self.swaps: list[Swap] = []
        self.on_image = False  # an --image deploy serves: the next swap rolls back

    def next_kind(self) -> SwapKind:
        if self.image is None:
            return "restart"
        return "rollback" if self.on_image else "deploy"

    def due(self, t0: float, duration: float, index: int) -> float:
        """When swap `index` (0-based) may start."""
        planned = t0 + duration * (index + 1) / (self.count + 1)
        if self.swaps:
            planned = max(planned, self.swaps[-1].quiet_from() + MIN_STEADY)
        return max(planned, t0 + WARMUP + MIN_STEADY)

    def end(self, t0: float, duration: float) -> float:
        """When the load may stop: after the planned duration and the last swap's windows."""
        last = self.swaps[-1].quiet_from() + MIN_STEADY if self.swaps else 0.0
        return max(t0 + duration, last)

    def run(self, t0: float, duration: float) -> list[Swap]:
        for index in range(self.count):
            delay = self.due(t0, duration, index) - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            if self.stop.is_set():
                break
            kind = self.next_kind()
            self.log(f"swap {index + 1}/{self.count}: {kind}" + (f" {self.image}" if kind == "deploy" else ""))
            swap = perform(self.client, self.app, index + 1, kind, self.image, self.retire_after)
            swap.interrupted = self.stop.is_set()
            if swap.ok and self.image is not None:
                self.on_image = kind == "deploy"
            self.swaps.append(swap)
            self.log(describe(swap, t0))
        return self.swaps


def describe(swap: Swap, t0: float) -> str:
    took = (swap.finished or swap.started) - swap.started
    head = f"swap {swap.index}: {swap.kind} release {swap.release or '-'}"
    if not swap.ok:
        return f"{head} FAILED after {took:.2f} s: {swap.reason}"
    at = f" (switch at {swap.swapped - t0:.2f} s)" if swap.swapped is not None else ""
    extra = "; Ctrl-C came while it ran: it was left to finish" if swap.interrupted else ""
    return f"{head} ok in {took:.2f} s{at}{extra}"
