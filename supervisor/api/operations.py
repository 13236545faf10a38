"""Day-two routes of the control API: the env overlay, the reload plan, route explanations,
maintenance mode. Add them with `app.router.add_routes(routes(get_supervisor))`.

Bad input is refused before anything changes (and before a stream starts), with the status
`api/responses.py` maps its error class to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from proxy.routes import Maintenance
from supervisor.api.responses import json_body, json_response
from supervisor.api.stream import stream
from supervisor.config.loader import load_config
from supervisor.deploy import environment, oneoff
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import DeployError

GetSupervisor = Callable[[], Supervisor]


def _env_change(body: Mapping[str, Any]) -> tuple[dict[str, str], list[str], bool]:
    set_ = body.get("set") or {}
    unset = body.get("unset") or []
    restart = body.get("restart", True)
    if not isinstance(set_, dict) or not isinstance(unset, list) or not isinstance(restart, bool):
        raise DeployError('body must be {"set": {KEY: VALUE}, "unset": [KEY], "restart": true}')
    return set_, unset, restart


def routes(get_supervisor: GetSupervisor) -> list[web.RouteDef]:
    async def env_list(request: web.Request) -> web.Response:
        show = request.query.get("show", "") in ("1", "true", "yes")
        return json_response(get_supervisor().env_rows(request.match_info["app"], show=show))

    async def env_change(request: web.Request) -> web.StreamResponse:
        sup = get_supervisor()
        name = request.match_info["app"]
        set_, unset, restart = _env_change(await json_body(request))
        environment.refuse(sup.ctx, name, set_, unset)  # 404, 400, 409 now: nothing changed

        async def work(emit: Callable[[Mapping[str, Any]], None]) -> dict[str, Any]:
            emit({"event": "env", "app": name, "set": sorted(set_), "unset": sorted(unset)})
            report = await sup.change_env(name, set_, unset, restart=restart, progress=emit)
            if report is None:
                return {"ok": True, "release": None, "reason": "", "warnings": [], "restarted": False}
            return {"ok": report.ok, "release": report.release, "reason": report.reason,
                    "warnings": report.warnings, "restarted": True}

        return await stream(request, work, lambda reason: {"ok": False, "release": 0, "reason": reason})

    async def plan(request: web.Request) -> web.Response:
        body = await json_body(request)
        path = body.get("path")
        sup = get_supervisor()
        config = load_config(path if isinstance(path, str) and path else sup.config.path)
        the_plan = sup.plan(config)
        return json_response({"config": str(config.path), "changes": not the_plan.empty,
                              "plan": the_plan.as_dict(), "warnings": list(config.warnings)})

    async def explain(request: web.Request) -> web.Response:
        url = request.query.get("url", "")
        if not url:
            raise DeployError("give the URL to explain: ?url=http://HOST/PATH")
        return json_response(get_supervisor().explain(url))

    async def run(request: web.Request) -> web.StreamResponse:
        """Create a one-off container, answer its id, then hold the connection: when it closes
        (the CLI is done, interrupted, killed), the container is removed."""
        sup = get_supervisor()
        body = await json_body(request)
        command, env = body.get("command") or [], body.get("env") or {}
        process, tty = body.get("process"), bool(body.get("tty", False))
        if not isinstance(command, list) or not isinstance(env, dict) or \
                not (process is None or isinstance(process, str)):
            raise DeployError('body must be {"command": [...], "env": {...}, "process": "web", "tty": false}')
        info = await oneoff.create(sup.ctx, request.match_info["app"], command, process=process,
                                   env=env, tty=tty)
        try:
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await response.prepare(request)
            await response.write(orjson.dumps({"event": "created", "id": info.id, "name": info.name}) + b"\n")
            while (transport := request.transport) is not None and not transport.is_closing():
                await asyncio.sleep(0.1)
            return response
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(oneoff.remove(sup.ctx, info))

    async def maintenance(request: web.Request) -> web.Response:
        body = await json_body(request)
        on, message, retry = body.get("on"), body.get("message") or "", body.get("retry_after")
        if not isinstance(on, bool) or not isinstance(message, str) or \
                not (retry is None or (isinstance(retry, int) and not isinstance(retry, bool))):
            raise DeployError('body must be {"on": true, "message": "...", "retry_after": 600}')
        mode = Maintenance(message, retry) if on else None
        return json_response(await get_supervisor().set_maintenance(request.match_info["app"], mode))

    return [
        web.post("/v1/apps/{app}/maintenance", maintenance),
        web.post("/v1/apps/{app}/run", run),
        web.get("/v1/apps/{app}/env", env_list),
        web.post("/v1/apps/{app}/env", env_change),
        web.post("/v1/plan", plan),
        web.get("/v1/explain", explain),
    ]
