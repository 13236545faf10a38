"""One lock per app for every operation that changes what serves it.

Deploys, builds (a `git push` or `deploy --build`), rollback, restart, start, stop and scale all
take it, so two of them never interleave on one app, and a second one is refused at once with
one message (nothing queues behind a deploy). `busy()` is what `serve --takeover` asks before
it hands over: a build counts.

The check and the claim happen with nothing awaited between them, so on one event loop they
are one step; a claim may be released by another task (a build claimed by the request handler
is released by the task that builds and deploys).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from supervisor.model.errors import DeployInProgress


class Claim:
    """An operation holding an app's lock; `release()` once, when it ends."""

    def __init__(self, locks: OperationLocks, app: str) -> None:
        self._locks = locks
        self.app = app
        self._released = False

    def release(self) -> None:
        """Free the app; a second call does nothing (it must not free a later operation)."""
        if not self._released:
            self._released = True
            self._locks._running.pop(self.app, None)


class OperationLocks:
    def __init__(self) -> None:
        self._running: dict[str, str] = {}  # app -> what holds its lock ("deploy", "build", ...)

    def refuse_if_busy(self, app: str) -> None:
        """DeployInProgress when an operation of `app` runs (checked before a stream starts)."""
        running = self._running.get(app)
        if running is not None:
            raise DeployInProgress(
                f"app {app!r} is busy: a {running} is running; try again when it ends"
            )

    def claim(self, app: str, operation: str) -> Claim:
        """Take the app's lock for `operation`, or raise DeployInProgress."""
        self.refuse_if_busy(app)
        self._running[app] = operation
        return Claim(self, app)

    @contextlib.contextmanager
    def hold(self, app: str, operation: str) -> Iterator[Claim]:
        claim = self.claim(app, operation)
        try:
            yield claim
        finally:
            claim.release()

    def busy(self) -> dict[str, str]:
        """app -> the operation running on it now."""
        return dict(self._running)
