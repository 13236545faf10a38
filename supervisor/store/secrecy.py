"""Keeping secrets from local users: the state directory's modes, and release snapshots without
env or build-arg values.

The daemon runs with umask 077. Its state directory is 0700 and everything in it 0600 (0700 for
directories and for files with an execute bit, such as git hooks), existing files included:
`secure_state_dir` fixes them at every start. A release keeps the names of its env variables
and build args and one digest of their values, never the values.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("dockyard.supervisor")
UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
EXEC_MODE = 0o700
SECRET_KEYS = ("env", "build_args")  # the AppSpec fields whose values a release must not keep


def secure_state_dir(state_dir: Path) -> int:
    """umask 077, `state_dir` 0700 and everything under it 0600/0700; how many modes changed."""
    os.umask(UMASK)
    state_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    changed = _chmod(state_dir, DIR_MODE)
    for root, dirs, files in os.walk(state_dir, followlinks=False):
        for name in dirs:
            changed += _chmod(Path(root) / name, DIR_MODE)
        for name in files:
            changed += _chmod(Path(root) / name, None)
    if changed:
        log.info("state dir permissions fixed path=%s changed=%d", state_dir, changed)
    return changed


def _chmod(path: Path, mode: int | None) -> int:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(st.st_mode):
        return 0
    if mode is None:
        mode = EXEC_MODE if st.st_mode & 0o100 else FILE_MODE
    if stat.S_IMODE(st.st_mode) == mode:
        return 0
    os.chmod(path, mode)
    return 1


def digest(values: Mapping[str, Any]) -> str:
    """One digest of a name -> value table (sorted), so a release shows that values changed."""
    h = hashlib.sha256()
    for name in sorted(values):
        h.update(str(name).encode(errors="surrogatepass") + b"\0")
        h.update(str(values[name]).encode(errors="surrogatepass") + b"\0")
    return "sha256:" + h.hexdigest()


def redact(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A release snapshot with env and build_args as {"names": [...], "digest": ...}."""
    result = dict(snapshot)
    for key in SECRET_KEYS:
        value = result.get(key)
        if isinstance(value, Mapping) and not is_redacted(value):
            result[key] = {"names": sorted(value), "digest": digest(value)}
    return result


def is_redacted(value: Mapping[str, Any]) -> bool:
    return set(value) == {"names", "digest"} and isinstance(value.get("names"), list)
