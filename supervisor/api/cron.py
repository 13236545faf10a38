"""The scheduler's part of the control API (aiohttp, JSON through orjson).

    GET  /v1/cron[?app=APP]                     every task: schedule, next run, last result
    GET  /v1/apps/{app}/cron/{task}/runs[?limit=N]  the task's runs, newest first
    POST /v1/apps/{app}/cron/{task}/run         NDJSON: {"event":"output","line":...} lines,
                                                then {"event":"result","exit_code":N,...}
    POST /v1/apps/{app}/cron/{task}/suspend     {"app":..., "id":..., "suspended": true}
    POST /v1/apps/{app}/cron/{task}/resume

Unknown app or task: 404 {"error": "..."}. A run started by POST .../run goes on to the end
(and is recorded) even when the client goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from scheduler.errors import UnknownTask
from scheduler.runs import RunRecord
from scheduler.service import Scheduler
from supervisor.api.responses import error_response, json_response
from supervisor.api.stream import Emit, stream

GetScheduler = Callable[[], Scheduler]
RUNS_LIMIT = 20
RUNS_LIMIT_MAX = 500


def result_event(record: RunRecord) -> dict[str, Any]:
    """The final line of a run's stream (without "event", which the streamer adds)."""
    return {
        "run": record.id,
        "app": record.app,
        "task": record.task,
        "status": record.status,
        "exit_code": record.exit_code,
        "release": record.release,
        "image": record.image,
        "seconds": round(record.ended - record.started, 3)
        if record.ended is not None and record.started is not None else None,
    }


def routes(get_scheduler: GetScheduler) -> list[web.RouteDef]:
    """The route definitions; add them with `app.router.add_routes(routes(...))`."""

    async def list_tasks(request: web.Request) -> web.Response:
        try:
            return json_response(get_scheduler().list(request.query.get("app") or None))
        except UnknownTask as exc:
            return error_response(exc)

    async def list_runs(request: web.Request) -> web.Response:
        app, task = request.match_info["app"], request.match_info["task"]
        try:
            limit = min(int(request.query.get("limit", RUNS_LIMIT)), RUNS_LIMIT_MAX)
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be an integer") from None
        sched = get_scheduler()
        try:
            sched.task(app, task)
        except UnknownTask as exc:
            return error_response(exc)
        return json_response([r.to_dict() for r in sched.runs(app, task, limit)])

    async def run(request: web.Request) -> web.StreamResponse:
        app, task = request.match_info["app"], request.match_info["task"]
        sched = get_scheduler()
        try:
            sched.task(app, task)
        except UnknownTask as exc:
            return error_response(exc)

        async def work(emit: Emit) -> dict[str, Any]:
            def line(text: str) -> None:
                emit({"event": "output", "line": text})

            return result_event(await sched.run_now(app, task, line))

        def failed(reason: str) -> dict[str, Any]:
            return {"app": app, "task": task, "status": "failed", "exit_code": None, "error": reason}

        return await stream(request, work, failed)

    def toggle(suspend: bool) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            app, task = request.match_info["app"], request.match_info["task"]
            sched = get_scheduler()
            try:
                (sched.suspend if suspend else sched.resume)(app, task)
            except UnknownTask as exc:
                return error_response(exc)
            return json_response({"app": app, "id": task, "suspended": suspend})

        return handler

    return [
        web.get("/v1/cron", list_tasks),
        web.get("/v1/apps/{app}/cron/{task}/runs", list_runs),
        web.post("/v1/apps/{app}/cron/{task}/run", run),
        web.post("/v1/apps/{app}/cron/{task}/suspend", toggle(True)),
        web.post("/v1/apps/{app}/cron/{task}/resume", toggle(False)),
    ]


def add_routes(app: web.Application, get_scheduler: GetScheduler) -> None:
    app.router.add_routes(routes(get_scheduler))
