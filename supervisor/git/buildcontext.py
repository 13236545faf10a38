"""Build contexts as tar files on disk, capped in bytes, that Docker reads directly.

A push's `git archive` and an uploaded tar are streamed to a file under `<state_dir>/builds`
(never held in memory), and stop with a clear error past `max_build_context` bytes. Nothing is
extracted in Python: one streaming pass over the tar headers (`tarfile` in `r|` mode, which
writes nothing to disk) reads the root Procfile, app.json and .dockerignore (regular files, at
most MAX_REPO_FILE_BYTES each) and checks that a Dockerfile is there. When a .dockerignore
excludes something, a second pass copies the members it keeps into a new tar, as `docker build`
does on the client side. The tar file itself goes to `docker build` as its context stream, so
the tarfile `data` filter's bypasses (fixed only in Python 3.11.13, 3.12.11, 3.13.4) do not apply.

Each build's directory (`builds/ctx-*`) holds an exclusive `flock` on its `.lock` file for as
long as the build uses it; the kernel drops the lock when the process dies, however it dies. At
daemon start `sweep()` removes every directory whose lock nobody holds: what a daemon killed
mid-build left behind. Making a directory and taking its lock happen under a shared lock of
`builds/.lock`, which the sweep takes exclusively, so a sweep (a `--takeover` start while the
old daemon builds) never sees a new directory before its lock is held.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from supervisor.config import validators
from supervisor.model import defaults
from supervisor.model.errors import DeployError

BUILDS_DIR_NAME = "builds"  # under state_dir: contexts of builds in progress
WORKDIR_PREFIX = "ctx-"
LOCK_NAME = ".lock"  # in builds/ and in each build's directory (see the module docstring)
CHUNK = 1 << 16
DOCKERFILE = "Dockerfile"
IGNORE_FILE = ".dockerignore"
READ_FILES = ("Procfile", "app.json", IGNORE_FILE)


class ContextError(DeployError):
    """The build context is too large, not a tar, or has no Dockerfile; nothing was built."""


@dataclass
class Context:
    """A build context tar on disk, and the texts of its root Procfile, app.json, .dockerignore."""

    path: Path
    size: int
    texts: dict[str, str] = field(default_factory=dict)
    _dir: Workdir | None = None

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def close(self) -> None:
        """Remove the files (idempotent)."""
        if self._dir is not None:
            self._dir.remove()
            self._dir = None


@dataclass
class Workdir:
    """A build's private directory and the descriptor that holds its lock while it is used."""

    path: Path
    fd: int | None

    def remove(self) -> None:
        """Remove the directory, then drop the lock (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextmanager
def _locked(path: Path, how: int) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, how)
        yield fd
    finally:
        os.close(fd)


def workdir(state_dir: Path) -> Workdir:
    """A fresh private directory under `<state_dir>/builds` (on disk: /tmp may be memory),
    locked for this process until `remove()`."""
    base = state_dir / BUILDS_DIR_NAME
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(base / LOCK_NAME, fcntl.LOCK_SH):
        path = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=base))
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return Workdir(path, fd)


def sweep(state_dir: Path) -> list[Path]:
    """Blocking, at daemon start: remove the build directories no live process holds (a build
    killed mid-way, by SIGKILL or a power loss, leaves its context there); return them."""
    base = state_dir / BUILDS_DIR_NAME
    if not base.is_dir():
        return []
    removed = []
    with _locked(base / LOCK_NAME, fcntl.LOCK_EX):
        for entry in sorted(base.iterdir()):
            if entry.name.startswith(WORKDIR_PREFIX) and entry.is_dir() and not entry.is_symlink() \
                    and not _in_use(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _in_use(where: Path) -> bool:
    """Does a live process hold `where`'s lock? (No lock file: an older dockyard's directory.)"""
    try:
        fd = os.open(where / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def too_large(limit: int) -> ContextError:
    return ContextError(
        f"the build context is larger than max_build_context ({limit} bytes); refused "
        "(a .dockerignore keeps large files out of the context of a directory build)"
    )


async def from_stream(chunks: AsyncIterable[bytes], state_dir: Path, limit: int) -> Context:
    """Write an uploaded tar to disk, at most `limit` bytes; then scan and filter it."""
    where = workdir(state_dir)
    path = where.path / "upload.tar"
    size = 0
    try:
        with open(path, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                await asyncio.to_thread(out.write, chunk)
        return await asyncio.to_thread(finish, path, size, where, limit)
    except BaseException:
        where.remove()
        raise


async def from_git(args: list[str], env: dict[str, str], state_dir: Path, limit: int) -> Context:
    """Run `git archive` (`args`) with its output streamed to disk, killed past `limit` bytes."""
    return await asyncio.to_thread(_from_git, args, env, state_dir, limit)


def _from_git(args: list[str], env: dict[str, str], state_dir: Path, limit: int) -> Context:
    # Blocking, in a worker thread: a plain Popen, so no event loop child watcher is involved.
    where = workdir(state_dir)
    path = where.path / "archive.tar"
    try:
        with tempfile.TemporaryFile() as err, open(path, "wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err)
            assert proc.stdout is not None
            size = 0
            try:
                while chunk := proc.stdout.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise too_large(limit)
                    out.write(chunk)
            finally:
                if proc.poll() is None and size > limit:  # refused: stop git
                    proc.kill()
                proc.stdout.close()
                code = proc.wait()
            err.seek(0)
            message = err.read(CHUNK).decode(errors="replace").strip()
        if code != 0:
            raise ContextError(f"git archive failed: {message}")
        return finish(path, size, where, limit)
    except BaseException:
        where.remove()
        raise


def from_dir(root: Path, state_dir: Path, limit: int) -> Context:
    """Blocking: tar a local directory (honouring its .dockerignore) to disk, then scan it."""
    from docker.utils.build import tar

    if not root.is_dir():
        raise ContextError(f"build context {str(root)!r} is not a directory")
    if not (root / DOCKERFILE).is_file():
        raise ContextError(f"no {DOCKERFILE} at the root of {str(root)!r}")
    where = workdir(state_dir)
    path = where.path / "dir.tar"
    try:
        exclude = _patterns(_read_small(root / IGNORE_FILE))
        with open(path, "w+b") as out:
            tar(str(root), exclude=exclude, dockerfile=(DOCKERFILE, None), fileobj=out)
        size = path.stat().st_size
        if size > limit:
            raise too_large(limit)
        return finish(path, size, where, limit, filtered=True)
    except BaseException:
        where.remove()
        raise


def finish(path: Path, size: int, where: Workdir, limit: int, *, filtered: bool = False) -> Context:
    """Blocking: read the root files, check the Dockerfile, apply .dockerignore (unless done)."""
    texts, has_dockerfile = scan(path)
    if not has_dockerfile:
        raise ContextError(f"no {DOCKERFILE} at the root of the build context")
    patterns = [] if filtered else _patterns(texts.get(IGNORE_FILE))
    if patterns:
        kept = where.path / "context.tar"
        size = keep_only(path, kept, patterns, limit)
        path.unlink()
        path = kept
    return Context(path, size, texts, where)


def _name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def scan(path: Path) -> tuple[dict[str, str], bool]:
    """One streaming pass over the headers: the texts of the root files dockyard reads (regular
    files only, size-capped) and whether a Dockerfile is at the root. Extracts nothing."""
    texts: dict[str, str] = {}
    has_dockerfile = False
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                name = _name(member)
                if name == DOCKERFILE and (member.isfile() or member.issym()):
                    has_dockerfile = True
                if name not in READ_FILES or not member.isfile():
                    continue
                too_big = validators.file_size(member.size)
                if too_big:
                    raise ContextError(f"{name}: {too_big}")
                data = archive.extractfile(member)
                assert data is not None
                try:
                    texts[name] = data.read(defaults.MAX_REPO_FILE_BYTES + 1).decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    raise ContextError(f"cannot read {name}: {exc}") from exc
    except tarfile.TarError as exc:
        raise ContextError(f"the build context is not a readable tar: {exc}") from exc
    return texts, has_dockerfile


def keep_only(source: Path, dest: Path, patterns: list[str], limit: int) -> int:
    """Copy the members `patterns` (.dockerignore) do not exclude into `dest`; its size."""
    from docker.utils.build import PatternMatcher

    matcher = PatternMatcher(patterns)
    try:
        with tarfile.open(source, mode="r|*") as archive, tarfile.open(dest, mode="w") as out:
            for member in archive:
                name = _name(member)
                if name and name not in (DOCKERFILE, IGNORE_FILE) and matcher.matches(name):
                    continue
                out.addfile(member, archive.extractfile(member) if member.isfile() else None)
                if out.offset > limit:
                    raise too_large(limit)
    except tarfile.TarError as exc:
        raise ContextError(f"the build context is not a readable tar: {exc}") from exc
    return os.path.getsize(dest)


def _read_small(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        return fh.read(defaults.MAX_REPO_FILE_BYTES).decode(errors="replace")


def _patterns(text: str | None) -> list[str]:
    lines = (line.strip() for line in (text or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]
