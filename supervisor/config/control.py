"""The config file as bytes and TOML, and where the daemon's control socket is.

Most CLI commands only talk to the daemon: they need the control socket's path, not the whole
config checked. `control_socket` reads just that, so `dockyard deploy` starts in ~40 ms of CPU
instead of ~180 ms (the full loader and its imports), on the server whose proxy workers are
taking the new release's first requests (issue #19, bench/RESULTS.md). The daemon checked the
whole file when it loaded it; `dockyard validate` checks it on demand.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from supervisor.model import defaults
from supervisor.model.errors import ConfigError, Problem


def read_toml(path: str | Path) -> dict[str, Any]:
    """The file's TOML, or a ConfigError naming the file and what is wrong with it."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError([Problem(name, "", f"cannot read config file: {e.strerror or e}")]) from e
    except ValueError as e:  # e.g. a NUL byte in the path
        raise ConfigError([Problem(name, "", f"cannot read config file: {e}")]) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(name, "", f"not UTF-8 text: {e.reason} at byte {e.start}")]) from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib's message carries "(at line L, column C)"
        raise ConfigError([Problem(name, "", f"invalid TOML: {e}")]) from e
    except RecursionError as e:
        raise ConfigError([Problem(name, "", "invalid TOML: nested too deeply")]) from e


def state_dir(base: Path, text: str | None) -> Path:
    """`[server] state_dir`, relative to the config file's directory."""
    return base / (text or defaults.STATE_DIR)


def socket_path(base: Path, state_dir_text: str | None, socket_text: str | None) -> Path:
    """`[server] control_socket` (relative to the config file's directory), else
    `state_dir/control.sock`: the one rule, for the loader and for `control_socket`."""
    if socket_text:
        return base / socket_text
    return state_dir(base, state_dir_text) / defaults.CONTROL_SOCKET_NAME


def control_socket(path: str | Path) -> Path:
    """The control socket of the daemon that runs the config file at `path`, read from
    `[server] state_dir` and `control_socket` alone."""
    data = read_toml(path)
    server = data.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError([Problem(str(path), "server", "must be a table")])
    texts: dict[str, str | None] = {}
    for key in ("state_dir", "control_socket"):
        value = server.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError([Problem(str(path), f"server.{key}", f"must be a string, got {value!r}")])
        texts[key] = value
    return socket_path(Path(path).parent.absolute(), texts["state_dir"], texts["control_socket"])
