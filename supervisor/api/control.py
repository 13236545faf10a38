"""The control API: HTTP over a unix socket (mode 0600), JSON through orjson.

Long operations (deploy, rollback) answer with NDJSON: one line per progress event, then a
final `{"event": "result", ...}` line. They run in their own task, so a client that goes
away does not cancel a deploy half-way.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from supervisor.api import operations
from supervisor.api.responses import errors_middleware, json_body, json_response
from supervisor.api.stream import stream
from supervisor.deploy.report import DeployReport, Progress
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import DeployError
from supervisor.model.spec import CanarySpec

VERSION = "0.1.0"
SUPERVISOR_KEY = web.AppKey("supervisor", Supervisor)
STARTED_KEY = web.AppKey("started", float)
RELOAD_KEY = web.AppKey("reload", object)
TLS_STATUS_KEY = web.AppKey("tls_status", object)  # () -> {app: ACME certificate state}
CONNECTIONS_KEY = web.AppKey("connections", object)  # () -> (open client connections, limit)


def _deploy_result(report: DeployReport) -> dict[str, Any]:
    return {"ok": report.ok, "release": report.release, "reason": report.reason,
            "warnings": report.warnings}


def _deploy_failed(reason: str) -> dict[str, Any]:
    return {"ok": False, "release": 0, "reason": reason, "warnings": []}


async def _stream_deploy(
    request: web.Request, run: Callable[[Progress], Awaitable[DeployReport]]
) -> web.StreamResponse:
    async def work(emit: Progress) -> dict[str, Any]:
        return _deploy_result(await run(emit))

    return await stream(request, work, _deploy_failed)


def _checked(request: web.Request) -> tuple[Supervisor, str]:
    """The supervisor and the app the path names: UnknownApp (404) or DeployInProgress (409)
    now, before a stream starts."""
    sup = request.app[SUPERVISOR_KEY]
    app = request.match_info["app"]
    sup.app(app)
    sup.refuse_if_busy(app)
    return sup, app


CANARY_KEYS = {"percent": "percent", "for": "window", "max_error_rate": "max_error_rate",
               "max_latency_ratio": "max_latency_ratio", "min_requests": "min_requests"}


def _canary(value: Any, default: CanarySpec | None) -> CanarySpec | bool:
    """The body's `canary`: absent or true -> the app's setting (True); false -> none; an
    object -> those keys over the app's setting (or the defaults)."""
    if value is None or value is True:
        return True
    if value is False:
        return False
    if not isinstance(value, dict) or set(value) - set(CANARY_KEYS) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise web.HTTPBadRequest(text=f"canary must be true, false or an object of numbers with keys {', '.join(CANARY_KEYS)}")
    fields = {CANARY_KEYS[k]: v for k, v in value.items()}
    if "min_requests" in fields:
        fields["min_requests"] = int(fields["min_requests"])
    spec = dataclasses.replace(default or CanarySpec(), **fields)
    problems = spec.validate()
    if problems:
        raise web.HTTPBadRequest(text="; ".join(f"canary.{k}: {m}" for k, m in problems))
    return spec


async def deploy(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    image = body.get("image")
    if image is not None and not isinstance(image, str):
        raise web.HTTPBadRequest(text="image must be a string")
    sup, app = _checked(request)
    canary = _canary(body.get("canary"), sup.app(app).canary)
    return await _stream_deploy(request, lambda progress: sup.deploy(app, image, progress, canary))


async def canary_decide(request: web.Request) -> web.Response:
    """POST /v1/apps/{app}/canary/promote|abort: decide a running canary now."""
    sup = request.app[SUPERVISOR_KEY]
    app, decision = request.match_info["app"], request.match_info["decision"]
    if decision not in ("promote", "abort"):
        raise web.HTTPNotFound(text="expected /canary/promote or /canary/abort")
    release = sup.decide_canary(app, "promote" if decision == "promote" else "abort")
    return json_response({"app": app, "release": release, "decision": decision})


async def rollback(request: web.Request) -> web.StreamResponse:
    sup, app = _checked(request)
    if sup.state.previous_good(app) is None:
        raise DeployError(f"app {app!r} has no earlier successful release to roll back to")
    return await _stream_deploy(request, lambda progress: sup.rollback(app, progress))


async def restart(request: web.Request) -> web.StreamResponse:
    sup, app = _checked(request)
    if sup.state.current(app) is None:
        raise DeployError(f"app {app!r} has no serving release to restart")
    return await _stream_deploy(request, lambda progress: sup.restart(app, progress))


async def start(request: web.Request) -> web.StreamResponse:
    sup, app = _checked(request)
    return await _stream_deploy(request, lambda progress: sup.start(app, progress))


async def stop(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    stopped = await sup.stop(request.match_info["app"])
    return json_response({"app": request.match_info["app"], "stopped": stopped})


async def scale(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    body = await json_body(request)
    counts = body.get("counts")
    if not isinstance(counts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in counts.items()
    ):
        raise web.HTTPBadRequest(text='body must be {"counts": {"web": 3, ...}} with counts >= 0')
    result = await sup.scale(request.match_info["app"], counts)
    return json_response({"app": request.match_info["app"], "scale": result})


async def reload(request: web.Request) -> web.Response:
    reloader = request.app[RELOAD_KEY]
    return json_response(await reloader())  # type: ignore[operator]


async def ps(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    app = request.query.get("app")
    if app:
        sup.app(app)
    return json_response(await sup.ps(app))


async def nodes(request: web.Request) -> web.Response:
    return json_response(await request.app[SUPERVISOR_KEY].nodes())


async def routes(request: web.Request) -> web.Response:
    return json_response(request.app[SUPERVISOR_KEY].route_rows())


async def releases(request: web.Request) -> web.Response:
    return json_response(request.app[SUPERVISOR_KEY].release_rows(request.match_info["app"]))


async def status(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    return json_response(
        {
            "version": VERSION,
            "pid": os.getpid(),
            "uptime": round(time.time() - request.app[STARTED_KEY], 3),
            "config": str(sup.config.path),
            "apps": sup.route_rows(),
            "tls": request.app[TLS_STATUS_KEY](),  # type: ignore[operator]
            "connections": _connections(request.app[CONNECTIONS_KEY]()),  # type: ignore[operator]
            "docker": sup.ctx.engine.as_dict(),
        }
    )


def make_app(sup: Supervisor, reloader: Callable[[], Awaitable[Any]] | None = None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])
    app[SUPERVISOR_KEY] = sup
    app[RELOAD_KEY] = reloader or _no_reload
    app[TLS_STATUS_KEY] = dict
    app[CONNECTIONS_KEY] = lambda: None
    app[STARTED_KEY] = time.time()
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/ps", ps)
    app.router.add_get("/v1/nodes", nodes)
    app.router.add_get("/v1/routes", routes)
    app.router.add_get("/v1/apps/{app}/releases", releases)
    app.router.add_post("/v1/apps/{app}/deploy", deploy)
    app.router.add_post("/v1/apps/{app}/rollback", rollback)
    app.router.add_post("/v1/apps/{app}/restart", restart)
    app.router.add_post("/v1/apps/{app}/start", start)
    app.router.add_post("/v1/apps/{app}/stop", stop)
    app.router.add_post("/v1/apps/{app}/scale", scale)
    app.router.add_post("/v1/apps/{app}/canary/{decision}", canary_decide)
    app.router.add_post("/v1/reload", reload)
    app.router.add_routes(operations.routes(lambda: sup))
    return app


def _connections(counts: tuple[int, int] | None) -> dict[str, int] | None:
    return {"open": counts[0], "limit": counts[1]} if counts else None


async def _no_reload() -> Any:
    raise DeployError("this daemon cannot reload")


def prepare_socket_path(path: Path) -> None:
    """Remove a stale socket (no daemon answers on it); refuse if a daemon is running there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise DeployError(f"another dockyard daemon is already listening on {path}")
        finally:
            probe.close()
