"""Image builds: `docker build` of a context directory through the Docker SDK, off the event loop.

The build runs in a worker thread (`asyncio.to_thread`); each line of its output reaches the
caller's `on_line` on the event loop as it comes. The Dockerfile must be at the context's root.
A context directory honours its `.dockerignore`, as `docker build` does. Images are tagged
`<app>:<short-rev>` (git pushes) or `<app>:local-<stamp>` (local builds) and labelled
`dockyard.app=<app>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.model import defaults
from supervisor.model.errors import DeployError
from supervisor.runtime import engine
from supervisor.runtime.outputtail import LineSplitter

log = logging.getLogger("dockyard.supervisor")
DOCKERFILE = "Dockerfile"
SHORT_REV = 7  # characters of a commit id in an image tag, as `git rev-parse --short`
LABEL_REV = "dockyard.rev"
OnLine = Callable[[str], None]
BUILD_GRACE = 30.0  # seconds past build_timeout before the caller stops waiting for the build thread


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


def read_text(root: Path, name: str) -> str | None:
    """The text of `root/name` when it is a regular file, else None (at most MAX_REPO_FILE_BYTES)."""
    path = root / name
    if not path.is_file() or path.is_symlink():
        return None
    try:
        limit = defaults.MAX_REPO_FILE_BYTES
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:  # the words of config.validators.file_size (runtime cannot import config)
            raise BuildError(f"{name}: is larger than {limit // 1024} KiB ({len(data)} bytes or more); refused")
        return data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read {name}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """One image build (`Runtime.build`): what to tag it, its args and labels, where its lines go."""

    app: str
    tag: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    on_line: OnLine | None = None
    timeout: float = defaults.BUILD_TIMEOUT


async def build_image(client: Any, context: bytes | Path, request: BuildRequest) -> str:
    """Build the tar `context` (bytes, or a tar file Docker reads as it goes) with the SDK
    `client` as `request.tag`; return the image id. Raises BuildError on failure, and after
    `timeout` seconds: the build's connection is closed (Docker cancels the build) and the app
    is free for the next push. Callers go through `Runtime.build` (runtime/docker.py)."""
    app, tag, build_args, labels = request.app, request.tag, request.build_args, request.labels
    on_line, timeout = request.on_line, request.timeout
    loop = asyncio.get_running_loop()
    all_labels = {defaults.LABEL_APP: app, **(labels or {})}
    deadline = time.monotonic() + timeout
    stream: list[Any] = []  # the build's output generator, to close it on a timeout

    def emit(line: str) -> None:
        if on_line is not None:
            loop.call_soon_threadsafe(on_line, line)

    def run() -> str:
        import urllib3.exceptions

        image_id = ""
        lines = LineSplitter()  # only new text is scanned; a long unfinished line comes in pieces
        fileobj = io.BytesIO(context) if isinstance(context, bytes) else open(context, "rb")  # noqa: SIM115
        try:
            # The read timeout ends a build that prints nothing for `timeout` seconds; the
            # deadline check below ends one that keeps printing.
            chunks = client.api.build(
                fileobj=fileobj, custom_context=True, tag=tag,
                buildargs=dict(build_args or {}), labels=all_labels,
                rm=True, forcerm=True, decode=True, timeout=timeout,
                container_limits={"cpushares": defaults.BUILD_CPU_SHARES},
            )
            stream.append(chunks)
            for chunk in chunks:
                if time.monotonic() > deadline:
                    raise BuildError(f"docker build timed out after {timeout:g}s (build_timeout)")
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
        except BuildError:
            raise
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # a read timeout: no output for `timeout` s
            if time.monotonic() >= deadline - 1:
                raise BuildError(f"docker build timed out after {timeout:g}s (build_timeout)") from exc
            raise BuildError(f"docker build failed: {exc}") from exc
        except Exception as exc:
            if not engine.is_sdk_error(exc):
                raise
            raise BuildError(f"docker build failed: {exc}") from exc
        finally:
            for opened in stream:
                with contextlib.suppress(Exception):
                    opened.close()
            fileobj.close()
        for piece in lines.flush():
            if piece.strip():
                emit(piece.decode(errors="replace").rstrip())
        if not image_id:
            image_id = str(client.api.inspect_image(tag)["Id"])
        return image_id

    started = time.monotonic()
    size = len(context) if isinstance(context, bytes) else context.stat().st_size
    log.info("building app=%s tag=%s context_bytes=%d", app, tag, size)
    try:
        # The thread ends on its own at the deadline; waiting past it (a stuck engine) frees the app.
        image_id = await asyncio.wait_for(asyncio.to_thread(run), timeout + BUILD_GRACE)
    except TimeoutError:
        log.warning("build timed out app=%s tag=%s timeout=%g", app, tag, timeout)
        raise BuildError(f"docker build timed out after {timeout:g}s (build_timeout)") from None
    except BuildError as exc:
        log.warning("build failed app=%s tag=%s reason=%s", app, tag, exc)
        raise
    log.info(
        "built app=%s tag=%s image=%s duration=%.3f", app, tag, image_id[:19], time.monotonic() - started
    )
    return image_id


def context_size(data: bytes | int) -> str:
    size = data if isinstance(data, int) else len(data)
    return f"{size / 1024:.0f} KiB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"

