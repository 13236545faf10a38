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

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from scheduler.errors import UnknownTask
from scheduler.runs import RunRecord
from scheduler.service import Scheduler

GetScheduler = Callable[[], Scheduler]
RUNS_LIMIT = 20
RUNS_LIMIT_MAX = 500


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


def result_event(record: RunRecord) -> dict[str, Any]:
    return {
        "event": "result",
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
            return _json(get_scheduler().list(request.query.get("app") or None))
        except UnknownTask as exc:
            return _error(str(exc), 404)

    async def list_runs(request: web.Request) -> web.Response:
        app, task = request.match_info["app"], request.match_info["task"]
        try:
            limit = min(int(request.query.get("limit", RUNS_LIMIT)), RUNS_LIMIT_MAX)
        except ValueError:
            return _error("limit must be an integer", 400)
        sched = get_scheduler()
        try:
            sched.task(app, task)
        except UnknownTask as exc:
            return _error(str(exc), 404)
        return _json([r.to_dict() for r in sched.runs(app, task, limit)])

    async def run(request: web.Request) -> web.StreamResponse:
        app, task = request.match_info["app"], request.match_info["task"]
        sched = get_scheduler()
        try:
            sched.task(app, task)
        except UnknownTask as exc:
            return _error(str(exc), 404)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        going = asyncio.ensure_future(sched.run_now(app, task, queue.put_nowait))
        going.add_done_callback(lambda _f: queue.put_nowait(None))
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        while (line := await queue.get()) is not None:
            await response.write(orjson.dumps({"event": "output", "line": line}) + b"\n")
        try:
            final = result_event(going.result())
        except Exception as exc:  # reported in the stream: the headers are gone already
            final = {"event": "result", "app": app, "task": task, "status": "failed",
                     "exit_code": None, "error": str(exc)}
        await response.write(orjson.dumps(final) + b"\n")
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    def toggle(suspend: bool) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            app, task = request.match_info["app"], request.match_info["task"]
            sched = get_scheduler()
            try:
                (sched.suspend if suspend else sched.resume)(app, task)
            except UnknownTask as exc:
                return _error(str(exc), 404)
            return _json({"app": app, "id": task, "suspended": suspend})

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
