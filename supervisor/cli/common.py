"""What every command needs from its arguments: the config file, the loaded config, the
daemon's control client; and `add_command`, which declares a command on the parser."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.cli.client import ControlClient
from supervisor.cli.exits import Command
from supervisor.config.control import control_socket
from supervisor.model.errors import DockyardError

if TYPE_CHECKING:
    from supervisor.model.spec import Config

DEFAULT_CONFIGS = ("dockyard.toml", "/etc/dockyard/dockyard.toml")

LoadConfig = Callable[[argparse.Namespace], "Config"]
ClientFactory = Callable[[argparse.Namespace], ControlClient]
SubParsers = argparse._SubParsersAction  # type: ignore[type-arg]


def config_path(args: argparse.Namespace) -> Path:
    """-c FILE, else $DOCKYARD_CONFIG, else the first of DEFAULT_CONFIGS that exists."""
    given = getattr(args, "config", None) or os.environ.get("DOCKYARD_CONFIG")
    if given:
        return Path(given)
    for candidate in DEFAULT_CONFIGS:
        if Path(candidate).exists():
            return Path(candidate)
    raise DockyardError(
        "no config file: pass -c FILE or set DOCKYARD_CONFIG "
        f"(looked for {', '.join(DEFAULT_CONFIGS)})"
    )


def load(args: argparse.Namespace) -> Config:
    """The whole config, checked (lazy import: the commands that only talk to the daemon do not
    pay for the loader)."""
    from supervisor.config.loader import load_config

    return load_config(config_path(args))


def client(args: argparse.Namespace) -> ControlClient:
    """The control client for the daemon of the config that `args` name: only the socket's path
    is read from the file (supervisor/config/control.py)."""
    return ControlClient(control_socket(config_path(args)))


def add_command(
    sub: SubParsers, common: argparse.ArgumentParser, name: str, func: Command, help: str
) -> argparse.ArgumentParser:
    """Declare `dockyard NAME` (with -c/--config from `common`) that runs `func`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, parents=[common], help=help, description=help
    )
    parser.set_defaults(func=func)
    return parser
