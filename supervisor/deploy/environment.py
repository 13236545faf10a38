"""`dockyard env`: the env overlay of an app (in SQLite, over the config's env and env_file),
read and changed, then a zero-downtime restart so the containers see it.

Values are secrets: they are never logged (only key names) and never kept with a release
(deploy/report.py `snapshot` keeps the names).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor.config import validators
from supervisor.deploy.context import Context
from supervisor.deploy.report import DeployReport, Progress
from supervisor.deploy.scale import restart
from supervisor.model.errors import DeployError

log = logging.getLogger("dockyard.supervisor")


def rows(ctx: Context, name: str, *, show: bool) -> list[dict[str, Any]]:
    """Each variable of the app with where it comes from; values only with `show`."""
    ctx.apps.app(name)
    return [
        {"key": key, "source": source, "value": value if show else None}
        for key, (source, value) in ctx.apps.env_layers(name).items()
    ]


def check_change(set_: Mapping[str, str], unset: Sequence[str]) -> None:
    """DeployError for a bad name or value, before anything changes."""
    if not set_ and not unset:
        raise DeployError("nothing to change: give KEY=VALUE (set) or KEY (unset)")
    for key in [*set_, *unset]:
        if not isinstance(key, str) or validators.env_name(key):
            raise DeployError(f"bad env var name {key!r}: letters, digits and '_', not starting with a digit")
    for key, value in set_.items():
        if not isinstance(value, str) or "\0" in value:
            raise DeployError(f"bad value for {key}: a string without NUL bytes")


async def change(
    ctx: Context, name: str, set_: Mapping[str, str], unset: Sequence[str], *,
    restart_app: bool, progress: Progress | None = None,
) -> DeployReport | None:
    """Set and unset overlay keys (one transaction), then restart the app's serving release
    unless `restart_app` is false or nothing serves; the restart's report, or None."""
    refuse(ctx, name, set_, unset)
    ctx.state.overlay.change_env(name, set_, unset)
    log.info("env changed app=%s set=%s unset=%s", name, ",".join(sorted(set_)), ",".join(unset))
    ctx.apps.refresh()
    if not restart_app or ctx.state.current(name) is None or ctx.state.is_stopped(name):
        return None
    return await restart(ctx, name, progress)


def refuse(ctx: Context, name: str, set_: Mapping[str, str], unset: Sequence[str]) -> None:
    """Every reason to change nothing, raised before anything changes: an unknown app, a bad
    name or value, a key to unset the overlay does not hold, another operation running."""
    ctx.apps.app(name)
    check_change(set_, unset)
    layers = ctx.apps.env_layers(name)
    for key in unset:
        source = layers.get(key, ("", ""))[0]
        if source != "overlay":
            where = f"the app's {source}" if source else "nowhere"
            raise DeployError(f"{key} is not set by `dockyard env set` (it comes from {where}); nothing changed")
    ctx.locks.refuse_if_busy(name)
