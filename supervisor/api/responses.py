"""JSON in and out of the control API, and the one map from errors to HTTP statuses.

Handlers raise the library's errors; `errors_middleware` answers them, choosing the status by
the exception's class (never by its message): unknown app or task 404, an operation already
running 409, a bad config, Procfile or app.json 400 with every problem, any other
DockyardError 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from scheduler.errors import UnknownTask
from supervisor.model.errors import ConfigError, DeployInProgress, DockyardError, UnknownApp

STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownApp, 404),
    (UnknownTask, 404),
    (DeployInProgress, 409),
    (DockyardError, 400),
)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(exc: Exception) -> web.Response:
    """The answer to a library error raised before a stream started."""
    if isinstance(exc, ConfigError):
        problems = [str(p) for p in exc.problems]
        return json_response({"error": "invalid config", "problems": problems}, 400)
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    return json_response({"error": str(exc)}, status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DockyardError as exc:
        return error_response(exc)


async def json_body(request: web.Request) -> Mapping[str, Any]:
    """The request's JSON object ({} for an empty body); 400 for anything else."""
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
