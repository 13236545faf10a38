"""Errors of the supervisor package. Only the CLI turns them into exit codes and messages."""

from __future__ import annotations

from typing import NamedTuple


class DockyardError(Exception):
    """Base class of every error dockyard reports to a user."""


class Problem(NamedTuple):
    """One thing wrong in a config file: which file, which key path, what is wrong.

    (A NamedTuple, not a dataclass: every CLI command imports this module, and `dataclasses`
    with the `inspect` it imports cost ~6 ms of each command's CPU.)"""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.file}: {self.key}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(DockyardError):
    """A config file (TOML, app.json or Procfile) is invalid. Carries every problem at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RuntimeFailure(DockyardError):
    """The container runtime (Docker) failed to do what was asked."""


class EngineUnreachable(RuntimeFailure):
    """The Docker engine does not answer at all (dockerd stopped or restarting)."""


class ContainerGone(RuntimeFailure):
    """The container was removed (or never existed) while dockyard worked with it."""


class DeployError(DockyardError):
    """A deploy failed; the old release keeps serving."""


class UnknownApp(DeployError):
    """The config defines no app of that name (the control API answers 404)."""


class DeployInProgress(DeployError):
    """Another operation (deploy, build, rollback, restart, scale, stop) of the app is running."""


class ControlError(DockyardError):
    """The daemon could not be reached, or answered with an error."""
