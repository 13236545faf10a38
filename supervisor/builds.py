"""Image builds: `docker build` of a context directory through the Docker SDK, off the event loop.

The build runs in a worker thread (`asyncio.to_thread`); each line of its output reaches the
caller's `on_line` on the event loop as it comes. The Dockerfile must be at the context's root.
A context directory honours its `.dockerignore`, as `docker build` does. Images are tagged
`<app>:<short-rev>` (git pushes) or `<app>:local-<stamp>` (local builds) and labelled
`dockyard.app=<app>`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import defaults, validators
from .errors import DeployError
from .outputtail import LineSplitter

log = logging.getLogger("dockyard.supervisor")
DOCKERFILE = "Dockerfile"
SHORT_REV = 7  # characters of a commit id in an image tag, as `git rev-parse --short`
LABEL_REV = "dockyard.rev"
OnLine = Callable[[str], None]


class BuildError(DeployError):
    """The build context is unusable or `docker build` failed; nothing was deployed."""


def image_tag(app: str, rev: str | None = None, now: float | None = None) -> str:
    """`<app>:<short-rev>` for a commit, else `<app>:local-<YYYYmmdd-HHMMSS.mmm>`."""
    if rev:
        return f"{app}:{rev[:SHORT_REV]}"
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{app}:local-{stamp}.{int(now * 1000) % 1000:03d}"


def context_tar(path: Path) -> bytes:
    """A tar of the build context at `path` (honouring .dockerignore); BuildError without a Dockerfile."""
    from docker.utils.build import tar

    if not path.is_dir():
        raise BuildError(f"build context {str(path)!r} is not a directory")
    if not (path / DOCKERFILE).is_file():
        raise BuildError(f"no {DOCKERFILE} at the root of {str(path)!r}")
    exclude: list[str] = []
    ignore = path / ".dockerignore"
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text(errors="replace").splitlines())
        exclude = [line for line in lines if line and not line.startswith("#")]
    fileobj = tar(str(path), exclude=exclude, dockerfile=(DOCKERFILE, None))
    return bytes(fileobj.read())


def unpack(data: bytes, dest: Path) -> None:
    """Extract a tar (a git archive or an uploaded context) into `dest`, refusing unsafe members."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            archive.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BuildError(f"cannot unpack the build context: {exc}") from exc


def read_text(root: Path, name: str) -> str | None:
    """The text of `root/name` when it is a regular file, else None (at most MAX_REPO_FILE_BYTES)."""
    path = root / name
    if not path.is_file() or path.is_symlink():
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read(defaults.MAX_REPO_FILE_BYTES + 1)
        too_big = validators.file_size(len(data))
        if too_big:
            raise BuildError(f"{name}: {too_big}")
        return data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read {name}: {exc}") from exc


async def build_image(
    client: Any,
    context: bytes,
    *,
    app: str,
    tag: str,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    on_line: OnLine | None = None,
) -> str:
    """Build the tar `context` as `tag`; return the image id. Raises BuildError on failure."""
    loop = asyncio.get_running_loop()
    all_labels = {defaults.LABEL_APP: app, **(labels or {})}

    def emit(line: str) -> None:
        if on_line is not None:
            loop.call_soon_threadsafe(on_line, line)

    def run() -> str:
        import docker.errors

        image_id = ""
        lines = LineSplitter()  # only new text is scanned; a long unfinished line comes in pieces
        try:
            chunks = client.api.build(
                fileobj=io.BytesIO(context), custom_context=True, tag=tag,
                buildargs=dict(build_args or {}), labels=all_labels,
                rm=True, forcerm=True, decode=True, timeout=None,
            )
            for chunk in chunks:
                if "error" in chunk:
                    for piece in lines.flush():
                        emit(piece.decode(errors="replace"))
                    message = str(chunk.get("error") or "").strip()
                    emit(message)
                    raise BuildError(f"docker build failed: {message}")
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
                text = chunk.get("stream") or chunk.get("status") or ""
                for piece in lines.feed(str(text).encode(errors="replace")):
                    if piece.strip():
                        emit(piece.decode(errors="replace").rstrip())
        except docker.errors.DockerException as exc:
            raise BuildError(f"docker build failed: {exc}") from exc
        for piece in lines.flush():
            if piece.strip():
                emit(piece.decode(errors="replace").rstrip())
        if not image_id:
            image_id = str(client.api.inspect_image(tag)["Id"])
        return image_id

    started = time.monotonic()
    log.info("building app=%s tag=%s context_bytes=%d", app, tag, len(context))
    try:
        image_id = await asyncio.to_thread(run)
    except BuildError as exc:
        log.warning("build failed app=%s tag=%s reason=%s", app, tag, exc)
        raise
    log.info(
        "built app=%s tag=%s image=%s duration=%.3f", app, tag, image_id[:19], time.monotonic() - started
    )
    return image_id


def docker_client(runtime: Any) -> Any:
    """The Docker SDK client of the supervisor's runtime, or one from the environment."""
    client = getattr(runtime, "client", None)
    if client is not None:
        return client
    import docker

    return docker.from_env(timeout=60)


def context_size(data: bytes) -> str:
    return f"{len(data) / 1024:.0f} KiB" if len(data) < 1 << 20 else f"{len(data) / (1 << 20):.1f} MiB"

