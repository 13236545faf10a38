"""Release types: what SQLite keeps about each deploy, and the repository files a build read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ReleaseStatus = Literal["pending", "active", "superseded", "failed"]
# deploy: `dockyard deploy`; rollback; restart; start (`dockyard start`, or the daemon starting an
# app that does not run); build: `dockyard deploy --build`; git-push: a `git push`.
ReleaseKind = Literal["deploy", "rollback", "restart", "start", "build", "git-push"]


@dataclass(frozen=True, slots=True)
class RepoFiles:
    """The texts a build read from its repository, kept with the release (store.repo_files):
    the app's definition is the config's with these merged in, until a deploy without them."""

    procfile: str | None = None
    app_json: str | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class Release:
    app: str
    number: int
    image: str
    config: Mapping[str, Any]
    kind: ReleaseKind
    status: ReleaseStatus
    reason: str
    steps: tuple[Mapping[str, Any], ...]
    created_at: float
    finished_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "number": self.number,
            "image": self.image,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "steps": list(self.steps),
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }
