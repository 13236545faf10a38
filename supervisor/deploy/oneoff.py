"""`dockyard run`: a one-off container of an app's serving release, created here and run by
the CLI (docs/operations.md, "One-off commands", says why the CLI attaches to the engine itself).

The daemon creates the container (the serving release's image, the app's whole env, volumes,
network and limits, labelled role "oneoff" like predeploy and cron runs) and removes it when
the CLI's control connection closes, however it closes: the command's end, Ctrl-C, a killed
CLI, a dropped SSH session. A daemon that starts removes exited one-offs (deploy/adopt.py).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence

from supervisor.config import validators
from supervisor.deploy.context import Context
from supervisor.model.errors import DeployError
from supervisor.runtime.containers import oneoff_spec
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")
ROLE = "run"


async def create(
    ctx: Context, name: str, command: Sequence[str], *, process: str | None = None,
    env: Mapping[str, str] | None = None, tty: bool = False,
) -> ContainerInfo:
    """Create (not start) a one-off container of the app's serving release running `command`
    (empty: the process type's command, else the image's CMD)."""
    app = ctx.apps.app(name)
    current = ctx.state.current(name)
    if current is None:
        raise DeployError(f"app {name!r} has no serving release to run a command in: deploy it first")
    if process is not None and process not in app.processes:
        raise DeployError(f"app {name!r} has no process type {process!r} (it has {', '.join(app.processes)})")
    for key in env or {}:
        if validators.env_name(key):
            raise DeployError(f"bad env var name {key!r}: letters, digits and '_', not starting with a digit")
    if not all(isinstance(word, str) for word in command):
        raise DeployError("the command must be a list of strings")
    cmd: str | tuple[str, ...] | None = tuple(command) if command else None
    if cmd is None and process is not None:
        cmd = app.processes[process].command
    spec = oneoff_spec(
        app, image=current.image, instance=ctx.instance, release=current.number, role=ROLE,
        command=cmd, suffix=f"r{current.number}.{secrets.token_hex(3)}", env=env, tty=tty,
        process=process,
    )
    info = await ctx.runtime.create(spec)
    log.info("one-off created app=%s release=%d container=%s tty=%s", name, current.number,
             info.name, tty)
    return info


async def remove(ctx: Context, info: ContainerInfo) -> None:
    """The run is over (or its CLI went away): the container goes, running or not."""
    await ctx.runtime.remove(info.id)
    log.info("one-off removed app=%s container=%s", info.app, info.name)
