"""Whether code on disk can be changed by someone the daemon does not trust.

`dockyard install` points the root service at `/usr/local/bin/dockyard`, and each git
repository's pre-receive hook puts the package root on `sys.path`. If any directory on the way
to that code, or any file of it, is owned by another user or writable by group or others, that
user's code would run as root (the service) or as the push account. `untrusted` says why, or
None when only `owners` (root, and the daemon's own user for the hook) can change it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from supervisor.ops import paths

PACKAGES = ("supervisor", "proxy", "scheduler")  # what the hook imports from the package root


def _problem(path: Path, owners: set[int]) -> str | None:
    try:
        st = path.stat()  # a symlink is judged by its target; its own mode means nothing
    except OSError as exc:
        return f"{path}: cannot stat ({exc.strerror or exc})"
    if st.st_uid not in owners:
        return f"{path} is owned by uid {st.st_uid}"
    sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
        return f"{path} is writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
    return None


def _chain(path: Path) -> list[Path]:
    """`path` and every directory above it, both as named (whoever owns the directory holding a
    symlink can repoint it) and with symlinks resolved."""
    named = Path(os.path.abspath(path))
    resolved = path.resolve()
    return [*named.parents, resolved, *resolved.parents]


def untrusted(paths: Iterable[Path], trees: Iterable[Path] = (), owners: Iterable[int] = (0,)) -> str | None:
    """The first reason another user could change `paths` (each and their parent directories)
    or anything under `trees` (walked, symlinks not followed); None when none."""
    allowed = set(owners)
    seen: set[Path] = set()
    for path in [*paths, *trees]:
        for step in _chain(path):
            if step in seen:
                continue
            seen.add(step)
            problem = _problem(step, allowed)
            if problem:
                return problem
    for tree in trees:
        for root, dirs, files in os.walk(tree.resolve(), followlinks=False):
            for name in [*dirs, *files]:
                problem = _problem(Path(root) / name, allowed)
                if problem:
                    return problem
    return None


def package_root() -> Path:
    return paths.PACKAGE_ROOT


def code_problem(python: str, owners: Iterable[int], *, prefix: str | None = None, deep: bool = False) -> str | None:
    """Why the interpreter (`python`, its environment `prefix`) or the dockyard code it runs is
    not safe to run, or None. `deep` also walks the environment (its site-packages)."""
    root = package_root()
    trees = [root / name for name in PACKAGES if (root / name).is_dir()]
    top = [p for p in root.iterdir() if p.is_file() and p.suffix in (".py", ".pth", ".pyc")] if root.is_dir() else []
    env = [Path(prefix)] if prefix else []
    return untrusted([Path(python), root, *top, *env], trees + (env if deep else []), owners)
