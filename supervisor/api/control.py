"""The control API: HTTP over a unix socket (mode 0600), JSON through orjson.

Long operations (deploy, rollback) answer with NDJSON: one line per progress event, then a
final `{"event": "result", ...}` line. They run in their own task, so a client that goes
away does not cancel a deploy half-way.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from supervisor.deploy.flow import DeployReport, Progress
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import ConfigError, DeployError, DeployInProgress

VERSION = "0.1.0"
SUPERVISOR_KEY = web.AppKey("supervisor", Supervisor)
STARTED_KEY = web.AppKey("started", float)
RELOAD_KEY = web.AppKey("reload", object)
TLS_STATUS_KEY = web.AppKey("tls_status", object)  # () -> {app: ACME certificate state}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json"
    )


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DeployInProgress as exc:
        return _error(str(exc), 409)
    except ConfigError as exc:
        return _json({"error": "invalid config", "problems": [str(p) for p in exc.problems]}, 400)
    except DeployError as exc:
        return _error(str(exc), 404 if "unknown app" in str(exc) else 400)


async def json_body(request: web.Request) -> Mapping[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="request body must be a JSON object")
    return data


async def _stream(
    request: web.Request, run: Callable[[Progress], Awaitable[DeployReport]]
) -> web.StreamResponse:
    queue: asyncio.Queue[Mapping[str, Any] | None] = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    # Errors raised before the deploy begins (unknown app, one in progress) answer plainly.
    await asyncio.sleep(0)
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    while (event := await queue.get()) is not None:
        await response.write(orjson.dumps(event) + b"\n")
    try:
        report = task.result()
        final = {"event": "result", "ok": report.ok, "release": report.release,
                 "reason": report.reason, "warnings": report.warnings}
    except (DeployError, ConfigError) as exc:
        final = {"event": "result", "ok": False, "release": 0, "reason": str(exc), "warnings": []}
    await response.write(orjson.dumps(final) + b"\n")
    await response.write_eof()
    return response


async def deploy(request: web.Request) -> web.StreamResponse:
    sup = request.app[SUPERVISOR_KEY]
    app = request.match_info["app"]
    body = await json_body(request)
    image = body.get("image")
    if image is not None and not isinstance(image, str):
        raise web.HTTPBadRequest(text="image must be a string")
    sup.app(app)  # unknown app -> 404 before streaming
    if sup.lock(app).locked():
        raise DeployInProgress(f"a deploy of {app!r} is already running; try again when it ends")
    return await _stream(request, lambda progress: sup.deploy(app, image, progress))


async def rollback(request: web.Request) -> web.StreamResponse:
    sup = request.app[SUPERVISOR_KEY]
    app = request.match_info["app"]
    sup.app(app)
    if sup.state.previous_good(app) is None:
        raise DeployError(f"app {app!r} has no earlier successful release to roll back to")
    return await _stream(request, lambda progress: sup.rollback(app, progress))


async def restart(request: web.Request) -> web.StreamResponse:
    from supervisor.deploy.scale import restart as do_restart

    sup = request.app[SUPERVISOR_KEY]
    app = request.match_info["app"]
    sup.app(app)
    if sup.state.current(app) is None:
        raise DeployError(f"app {app!r} has no serving release to restart")
    return await _stream(request, lambda progress: do_restart(sup, app, progress))


async def start(request: web.Request) -> web.StreamResponse:
    from supervisor.deploy.scale import start as do_start

    sup = request.app[SUPERVISOR_KEY]
    app = request.match_info["app"]
    sup.app(app)
    return await _stream(request, lambda progress: do_start(sup, app, progress))


async def stop(request: web.Request) -> web.Response:
    from supervisor.deploy.scale import stop as do_stop

    sup = request.app[SUPERVISOR_KEY]
    stopped = await do_stop(sup, request.match_info["app"])
    return _json({"app": request.match_info["app"], "stopped": stopped})


async def scale(request: web.Request) -> web.Response:
    from supervisor.deploy.scale import scale as do_scale

    sup = request.app[SUPERVISOR_KEY]
    body = await json_body(request)
    counts = body.get("counts")
    if not isinstance(counts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in counts.items()
    ):
        raise web.HTTPBadRequest(text='body must be {"counts": {"web": 3, ...}} with counts >= 0')
    result = await do_scale(sup, request.match_info["app"], counts)
    return _json({"app": request.match_info["app"], "scale": result})


async def reload(request: web.Request) -> web.Response:
    reloader = request.app[RELOAD_KEY]
    return _json(await reloader())  # type: ignore[operator]


async def ps(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    app = request.query.get("app")
    if app:
        sup.app(app)
    return _json(await sup.ps(app))


async def routes(request: web.Request) -> web.Response:
    return _json(request.app[SUPERVISOR_KEY].route_rows())


async def releases(request: web.Request) -> web.Response:
    return _json(request.app[SUPERVISOR_KEY].release_rows(request.match_info["app"]))


async def status(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    return _json(
        {
            "version": VERSION,
            "pid": os.getpid(),
            "uptime": round(time.time() - request.app[STARTED_KEY], 3),
            "config": str(sup.config.path),
            "apps": sup.route_rows(),
            "tls": request.app[TLS_STATUS_KEY](),  # type: ignore[operator]
        }
    )


def make_app(sup: Supervisor, reloader: Callable[[], Awaitable[Any]] | None = None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])
    app[SUPERVISOR_KEY] = sup
    app[RELOAD_KEY] = reloader or _no_reload
    app[TLS_STATUS_KEY] = dict
    app[STARTED_KEY] = time.time()
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/ps", ps)
    app.router.add_get("/v1/routes", routes)
    app.router.add_get("/v1/apps/{app}/releases", releases)
    app.router.add_post("/v1/apps/{app}/deploy", deploy)
    app.router.add_post("/v1/apps/{app}/rollback", rollback)
    app.router.add_post("/v1/apps/{app}/restart", restart)
    app.router.add_post("/v1/apps/{app}/start", start)
    app.router.add_post("/v1/apps/{app}/stop", stop)
    app.router.add_post("/v1/apps/{app}/scale", scale)
    app.router.add_post("/v1/reload", reload)
    return app


async def _no_reload() -> Any:
    raise DeployError("this daemon cannot reload")


def prepare_socket_path(path: Path) -> None:
    """Remove a stale socket (no daemon answers on it); refuse if a daemon is running there."""
    import socket

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
