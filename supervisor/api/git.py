"""Build-and-deploy routes of the control API: git pushes and local builds.

    POST /v1/apps/{app}/git-push      JSON {"rev", "ref"[, "old"], "quarantine"?} or
                                      {"updates": [{"old", "rev", "ref"}, ...], "quarantine"?}:
                                      sent by a repository's pre-receive hook
    POST /v1/apps/{app}/build-deploy  a tar of the build context (Content-Type application/x-tar),
                                      or JSON {"path": DIR} (a directory the daemon can read),
                                      or nothing: the app's configured `build` directory

Both check everything they can before answering (unknown app 404, a deploy already running 409,
a branch other than the deploy branch, no Dockerfile, a bad Procfile or app.json: 400 with
{"error"} and nothing changes), then stream NDJSON: `{"event": "warning", "message"}` lines,
`{"event": "build", "line"}` for each line of `docker build` output, the deploy's own events,
and a final `{"event": "result", "ok", "release", "reason", "image"}` line. Like a deploy, a
build goes on to the end when the client goes away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from supervisor.api.responses import error_response, json_body
from supervisor.api.stream import stream
from supervisor.config.repo import APP_JSON, PROCFILE, merge_repo
from supervisor.deploy.flow import deploy_holding_lock
from supervisor.deploy.locks import Claim
from supervisor.deploy.report import DeployReport, Progress
from supervisor.deploy.supervisor import Supervisor
from supervisor.git import buildcontext
from supervisor.git import repo as gitrepo
from supervisor.git.buildcontext import Context
from supervisor.model import defaults
from supervisor.model.errors import DeployError, DockyardError
from supervisor.model.release import ReleaseKind, RepoFiles
from supervisor.model.spec import AppSpec
from supervisor.ops.faults import kill_point
from supervisor.runtime import builds

log = logging.getLogger("dockyard.supervisor")
GetSupervisor = Callable[[], Supervisor]
TAR_TYPES = ("application/x-tar", "application/octet-stream")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A build ready to run: the merged app spec, the context tar (a file), its tag."""

    spec: AppSpec
    context: Context
    tag: str
    warnings: tuple[str, ...]
    kind: ReleaseKind
    files: RepoFiles


def prepare_context(app: AppSpec, context: Context, tag: str, kind: ReleaseKind, source: str) -> Prepared:
    """Blocking: merge the context's Procfile and app.json into `app`; the context is closed
    (its files removed) when this fails."""
    try:
        files = RepoFiles(context.texts.get(PROCFILE), context.texts.get(APP_JSON), source)
        merged = merge_repo(app, procfile=files.procfile, app_json=files.app_json, source=source)
    except BaseException:
        context.close()
        raise
    return Prepared(merged.spec, context, tag, merged.warnings, kind, files)


def prepare_dir(app: AppSpec, root: Path, tag: str, kind: ReleaseKind, source: str, *, state_dir: Path,
                limit: int = defaults.MAX_BUILD_CONTEXT) -> Prepared:
    """Blocking: tar the directory `root` to disk (its .dockerignore applied) and prepare it."""
    return prepare_context(app, buildcontext.from_dir(root, state_dir, limit), tag, kind, source)


def parse_updates(body: Mapping[str, Any]) -> list[gitrepo.RefUpdate]:
    raw = body.get("updates")
    if raw is None:
        raw = [{"old": body.get("old", gitrepo.ZERO_REV), "rev": body.get("rev"), "ref": body.get("ref")}]
    if not isinstance(raw, list) or not raw:
        raise DeployError("updates must be a non-empty list of {old, rev, ref}")
    updates = []
    for item in raw:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("rev", "ref")):
            raise DeployError("each update needs string rev and ref")
        updates.append(gitrepo.RefUpdate(str(item.get("old") or gitrepo.ZERO_REV), item["rev"], item["ref"]))
    return updates


def routes(
    get_supervisor: GetSupervisor, *, image_labels: Mapping[str, str] | None = None
) -> list[web.RouteDef]:
    """The route definitions; add them with `app.router.add_routes(routes(...))`.

    `image_labels` are added to every image built (the tests label theirs for cleanup)."""

    async def guarded(
        request: web.Request, prepare: Callable[[Supervisor, AppSpec], Awaitable[Prepared]]
    ) -> web.StreamResponse:
        """Claim the app's operation lock, prepare, then build and deploy holding it."""
        sup = get_supervisor()
        name = request.match_info["app"]
        try:
            app = sup.ctx.apps.base_app(name)  # the new files merge into the config's definition
            claim = sup.ctx.locks.claim(name, "build")
        except DockyardError as exc:
            return error_response(exc)
        try:
            prepared = await prepare(sup, app)
        except BaseException as exc:
            claim.release()
            if isinstance(exc, DockyardError):
                return error_response(exc)
            raise
        return await _stream(request, sup, prepared, claim, image_labels or {})

    async def git_push(request: web.Request) -> web.StreamResponse:
        body = await json_body(request)

        async def prepare(sup: Supervisor, app: AppSpec) -> Prepared:
            updates = parse_updates(body)
            for update in updates:
                gitrepo.check_update(app, update)
            if len(updates) > 1:
                raise gitrepo.GitError("push one deploy branch at a time")
            rev = updates[0].new
            quarantine = body.get("quarantine")
            if quarantine is not None and not isinstance(quarantine, str):
                raise DeployError("quarantine must be a string")
            repo = gitrepo.repo_path(sup.config, app.name)
            if not (repo / "HEAD").is_file():
                raise gitrepo.GitError(f"no repository at {repo}: run `dockyard git init {app.name}`")
            server = sup.config.server
            context = await gitrepo.export(repo, rev, quarantine, state_dir=server.state_dir,
                                           limit=server.max_build_context)
            return await asyncio.to_thread(
                prepare_context, app, context, builds.image_tag(app.name, rev), "git-push", rev[:builds.SHORT_REV]
            )

        return await guarded(request, prepare)

    async def build_deploy(request: web.Request) -> web.StreamResponse:
        is_tar = request.content_type in TAR_TYPES
        body = {} if is_tar else await json_body(request)

        async def prepare(sup: Supervisor, app: AppSpec) -> Prepared:
            tag = builds.image_tag(app.name)
            server = sup.config.server
            if is_tar:  # streamed to disk, capped: never held in memory
                context = await buildcontext.from_stream(
                    request.content.iter_chunked(1 << 16), server.state_dir, server.max_build_context
                )
                return await asyncio.to_thread(prepare_context, app, context, tag, "build", "")
            path = body.get("path") or (app.build if app.build not in (None, "git") else None)
            if not isinstance(path, str) or not path:
                raise DeployError(f"app {app.name!r} has no build directory: send a tar or a path")
            root = Path(path)
            if not root.is_absolute():
                raise DeployError(f"path must be absolute, got {path!r}")
            return await asyncio.to_thread(prepare_dir, app, root, tag, "build", str(root),
                                           state_dir=server.state_dir, limit=server.max_build_context)

        return await guarded(request, prepare)

    return [
        web.post("/v1/apps/{app}/git-push", git_push),
        web.post("/v1/apps/{app}/build-deploy", build_deploy),
    ]


def add_routes(
    app: web.Application, get_supervisor: GetSupervisor, *, image_labels: Mapping[str, str] | None = None
) -> None:
    app.router.add_routes(routes(get_supervisor, image_labels=image_labels))


async def build_and_deploy(sup: Supervisor, prepared: Prepared, progress: Progress,
                           image_labels: Mapping[str, str]) -> tuple[DeployReport | None, str]:
    """Build the image, then run the deploy pipeline (the caller holds the app's operation
    lock). (None, reason) when the build failed."""
    app = prepared.spec
    for warning in prepared.warnings:
        progress({"event": "warning", "app": app.name, "message": warning})
    progress({"event": "build", "app": app.name, "status": "start", "image": prepared.tag,
              "context": builds.context_size(prepared.context.size)})

    def on_line(line: str) -> None:
        progress({"event": "build", "app": app.name, "line": line})

    labels = {defaults.LABEL_INSTANCE: sup.instance, **image_labels}
    if prepared.kind == "git-push":
        labels[builds.LABEL_REV] = prepared.tag.rsplit(":", 1)[1]
    kill_point("mid-build")
    try:
        await sup.runtime.build(prepared.context.path, builds.BuildRequest(
            app=app.name, tag=prepared.tag, build_args=app.build_args, labels=labels,
            on_line=on_line, timeout=app.build_timeout,
        ))
    except DeployError as exc:
        progress({"event": "build", "app": app.name, "status": "failed", "error": str(exc)})
        return None, str(exc)
    progress({"event": "build", "app": app.name, "status": "done", "image": prepared.tag})
    report = await deploy_holding_lock(sup.ctx, app, prepared.tag, kind=prepared.kind,
                                       progress=progress, repo=prepared.files)
    return report, ""


async def _stream(
    request: web.Request, sup: Supervisor, prepared: Prepared, claim: Claim,
    image_labels: Mapping[str, str],
) -> web.StreamResponse:
    name = prepared.spec.name

    async def work(emit: Progress) -> dict[str, Any]:
        try:
            report, reason = await build_and_deploy(sup, prepared, emit, image_labels)
        finally:
            claim.release()
            await asyncio.to_thread(prepared.context.close)
        result: dict[str, Any] = {"app": name, "image": prepared.tag}
        if report is None:
            return {**result, **_failed(reason)}
        return {**result, "ok": report.ok, "release": report.release, "reason": report.reason,
                "warnings": report.warnings}

    def failed(reason: str) -> dict[str, Any]:
        return {"app": name, "image": prepared.tag, **_failed(reason)}

    def done() -> None:  # also when the work's task was cancelled before it started
        claim.release()
        prepared.context.close()

    return await stream(request, work, failed, finally_=done)


def _failed(reason: str) -> dict[str, Any]:
    return {"ok": False, "release": 0, "reason": reason, "warnings": []}
