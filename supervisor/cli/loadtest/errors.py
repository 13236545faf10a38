"""The loadtest's errors; the CLI turns them into a message and exit status 1."""

from __future__ import annotations

from supervisor.model.errors import DockyardError


class LoadTestError(DockyardError):
    """A loadtest that cannot start: a bad option, a non-local listener, an app not serving."""
