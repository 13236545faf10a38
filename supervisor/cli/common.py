"""What every command needs from its arguments: the config file, the loaded config, the
daemon's control client; and `add_command`, which declares a command on the parser."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without `shutil`: argparse makes one for every argument
    it declares (to check its metavar), and its own import of shutil (with bz2, lzma, fnmatch)
    cost each `dockyard` command ~1.5 ms of CPU on the server it is deploying to (issue #19).
    The width is what shutil.get_terminal_size gives: $COLUMNS, else the terminal's, else 80."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width)


def terminal_columns() -> int:
    columns = 0
    with contextlib.suppress(ValueError):
        columns = int(os.environ.get("COLUMNS", "0"))
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class Parser(argparse.ArgumentParser):
    """Every `dockyard` parser (subcommands get the same class): `Formatter` by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)


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
