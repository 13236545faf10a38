"""The deploy flow, top-down: predeploy, start, check, warm, swap, retire, postdeploy.

Read `deploy()` from top to bottom: everything before the swap can fail and leaves the old
release serving; the swap is one synchronous route-table assignment, and between the last
passing check and it only the proxy's connections to the new containers are opened (warm);
everything after it is cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import defaults, metrics
from .checks import CheckContext, run_checks
from .containers import oneoff_spec, process_spec, scales
from .errors import DeployError, DeployInProgress, RuntimeFailure
from .repoapp import RepoFiles
from .runtime import ContainerInfo
from .secrecy import redact
from .spec import AppSpec

if TYPE_CHECKING:
    from .core import Supervisor

log = logging.getLogger("dockyard.supervisor")
Progress = Callable[[Mapping[str, Any]], None]


@dataclass
class DeployReport:
    """What a deploy did, step by step; also what the CLI streams."""

    app: str
    release: int = 0
    image: str = ""
    ok: bool = False
    reason: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    progress: Progress | None = None
    warnings: list[str] = field(default_factory=list)

    def emit(self, event: str, **fields: Any) -> None:
        message = {"event": event, "app": self.app, "release": self.release, **fields}
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress(message)

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        start = time.monotonic()
        self.emit("step", step=name, status="start")
        try:
            yield
        except BaseException as exc:
            seconds = round(time.monotonic() - start, 3)
            self.steps.append({"step": name, "seconds": seconds, "ok": False})
            self.emit("step", step=name, status="failed", seconds=seconds, error=str(exc))
            raise
        seconds = round(time.monotonic() - start, 3)
        self.steps.append({"step": name, "seconds": seconds, "ok": True})
        self.emit("step", step=name, status="done", seconds=seconds)


def snapshot(app: AppSpec) -> dict[str, Any]:
    """A JSON-able copy of the app spec, kept with the release: env and build args by name
    and digest only (supervisor/secrecy.py), never their values."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return redact(dict(plain(app)))


async def deploy(
    sup: Supervisor,
    app: AppSpec,
    image: str,
    *,
    kind: str = "deploy",
    progress: Progress | None = None,
    repo: RepoFiles | None | Literal["current"] = "current",
) -> DeployReport:
    """Deploy `image` as a new release of `app` with zero downtime, or fail leaving the old one.

    `repo`: the Procfile/app.json texts `app` was merged with (a build, a rollback), kept with
    the release; "current": those of the serving release go on (restart, deploy --image)."""
    files = sup.repos.get(app.name) if repo == "current" else repo
    lock = sup.lock(app.name)
    if lock.locked():
        raise DeployInProgress(f"a deploy of {app.name!r} is already running; try again when it ends")
    async with lock:
        report = DeployReport(app.name, image=image, progress=progress)
        release = sup.state.begin_release(app.name, image, snapshot(app), kind)
        report.release = release.number
        if files is not None:
            sup.state.set_repo_files(app.name, release.number, files)
        log.info("deploying app=%s release=%d image=%s kind=%s", app.name, release.number, image, kind)
        report.emit("deploying", image=image, kind=kind)
        started = time.monotonic()
        new: list[ContainerInfo] = []
        try:
            async with asyncio.timeout(app.deploy_timeout):
                if not await sup.runtime.image_exists(image):
                    raise DeployError(f"image {image!r} not found")
                if app.predeploy:
                    async with report.step("predeploy"):
                        await _oneoff(sup, app, image, release.number, "predeploy", app.predeploy)
                async with report.step("start"):
                    await _start_all(sup, app, image, release.number, new)
                async with report.step("checks"):
                    await _check_all(sup, app, new)
                await sup.warm(app, new)  # pooled connections, so the switch does not wait on them
        except (DeployError, RuntimeFailure, TimeoutError, OSError) as exc:
            reason = str(exc) or exc.__class__.__name__
            if isinstance(exc, TimeoutError):
                reason = f"deploy timed out after {app.deploy_timeout:g}s"
            await _discard(sup, new)
            sup.state.fail(app.name, release.number, reason, report.steps)
            report.reason = reason
            metrics.deploy_finished(app.name, False, time.monotonic() - started, kind)
            log.warning("deploy failed app=%s release=%d reason=%s", app.name, release.number, reason)
            report.emit("failed", reason=reason, seconds=round(time.monotonic() - started, 3))
            return report

        # The swap: one synchronous route-table assignment, nothing awaited before it.
        old = sup.swap(app, release.number, new)
        report.steps.append({"step": "swap", "seconds": 0.0, "ok": True})
        sup.state.activate(app.name, release.number, report.steps)
        sup.settle_repo(app.name, files)
        report.emit("step", step="swap", status="done", targets=sup.targets(app.name))

        if old:
            sup.retire(app, old)
        if app.postdeploy:
            try:
                async with report.step("postdeploy"):
                    await _oneoff(sup, app, image, release.number, "postdeploy", app.postdeploy)
            except (DeployError, RuntimeFailure) as exc:
                report.warnings.append(f"postdeploy failed: {exc}")
        report.ok = True
        seconds = round(time.monotonic() - started, 3)
        metrics.deploy_finished(app.name, True, seconds, kind)
        log.info("deployed app=%s release=%d duration=%.3f", app.name, release.number, seconds)
        report.emit("deployed", seconds=seconds, warnings=report.warnings)
        return report


async def _oneoff(sup: Supervisor, app: AppSpec, image: str, release: int, role: str, cmd: str) -> None:
    spec = oneoff_spec(
        app, image=image, instance=sup.instance, release=release, role=role, command=cmd,
        suffix=f"r{release}.{int(time.time() * 1000) % 100000}",
    )
    result = await sup.runtime.run_oneoff(spec, app.deploy_timeout)
    for line in result.output.splitlines()[-20:]:  # debug: the output may hold secrets
        log.debug("%s app=%s: %s", role, app.name, line)
    if result.timed_out:
        raise DeployError(f"{role} command timed out")
    if result.exit_code != 0:
        tail = result.output.strip().splitlines()[-3:]
        raise DeployError(f"{role} command exited {result.exit_code}: {' | '.join(tail)}")


async def _start_all(
    sup: Supervisor, app: AppSpec, image: str, release: int, started: list[ContainerInfo]
) -> None:
    """Start every process type at its scale; `started` collects them even on failure."""
    counts = scales(app, sup.state.scale(app.name))

    async def one(process: str, index: int) -> None:
        spec = process_spec(
            app, image=image, instance=sup.instance, release=release, process=process, index=index
        )
        started.append(await sup.runtime.run(spec))

    try:
        async with asyncio.TaskGroup() as group:
            for process, count in counts.items():
                for index in range(1, count + 1):
                    group.create_task(one(process, index))
    except* RuntimeFailure as eg:
        raise eg.exceptions[0] from None


async def _check_all(sup: Supervisor, app: AppSpec, containers: list[ContainerInfo]) -> None:
    """Startup (and readiness) checks on every new container, in parallel; first failure wins."""
    host = app.hosts[0].replace("*.", "www.", 1) if app.hosts else None

    async def one(info: ContainerInfo) -> None:
        checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
        ctx = CheckContext(info, app.port, host, app.network)
        result = await run_checks(sup.runtime, ctx, checks, app.default_checks_wait)
        if not result.ok:
            metrics.check_failed(app.name, result.name, info.process, "startup")
            raise DeployError(f"check {result.name!r} failed on {info.name}: {result.error}")

    try:
        async with asyncio.TaskGroup() as group:
            for info in containers:
                group.create_task(one(info))
    except* DeployError as eg:
        raise eg.exceptions[0] from None


async def _discard(sup: Supervisor, containers: list[ContainerInfo]) -> None:
    await asyncio.gather(*(sup.runtime.remove(c.id) for c in containers), return_exceptions=True)


def web_of(containers: list[ContainerInfo]) -> list[ContainerInfo]:
    return [c for c in containers if c.process == defaults.WEB_PROCESS]
