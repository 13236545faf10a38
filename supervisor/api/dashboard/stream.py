"""Server-sent events: what makes the dashboard live without a reload.

- `GET /stream`: every second, `event: apps` with each app's release, busy operation,
  in-flight and last-minute numbers (the overview's live cells).
- `GET /apps/{app}/stream`: every second, `event: points` with the chart's new points and
  `event: state` (release, busy, last minute); as they happen, `event: deploy` with each of the
  app's deploy events and `event: marker` with each chart marker they stand for.

Each stream ends when the client goes away or the dashboard shuts down (`CLOSING_KEY`); a
comment line every `HEARTBEAT` seconds keeps proxies and tunnels from closing an idle one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from supervisor.api.dashboard import data
from supervisor.api.dashboard.pages import SOURCES_KEY
from supervisor.ops.events import Subscription

log = logging.getLogger("dockyard.supervisor")
CLOSING_KEY = web.AppKey("dashboard_closing", asyncio.Event)
POLL = 0.25  # seconds between looks at the series and the shutdown flag
HEARTBEAT = 15.0


def frame(event: str, payload: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    return response


async def _next_event(sub: Subscription, timeout: float) -> Any:
    try:
        return await asyncio.wait_for(sub.get(), timeout)
    except TimeoutError:
        return None


async def overview_stream(request: web.Request) -> web.StreamResponse:
    src = request.app[SOURCES_KEY]
    closing = request.app[CLOSING_KEY]
    response = await _open(request)
    try:
        while not closing.is_set():
            await response.write(frame("apps", data.live_overview(src)))
            await src.series.wait_tick(1.0 + POLL)
    except ConnectionError:  # the client went away
        pass
    return response


async def app_stream(request: web.Request) -> web.StreamResponse:
    src = request.app[SOURCES_KEY]
    closing = request.app[CLOSING_KEY]
    name = request.match_info["app"]
    src.supervisor.app(name)  # UnknownApp: 404 before the stream starts
    since = _since(request)
    with src.events.subscribe(name) as sub:
        response = await _open(request)
        beat = time.monotonic()
        try:
            while not closing.is_set():
                secrets = data.secrets_of(src.supervisor)
                points = src.series.points(name, since)
                if points["t"]:
                    since = points["t"][-1]
                    await response.write(frame("points", points))
                    await response.write(frame("state", _state(src, name)))
                    beat = time.monotonic()
                event = await _next_event(sub, POLL)
                while event is not None:  # all that is queued, at once
                    await response.write(frame("deploy", data.public_event(event, secrets)))
                    marker = data.marker_of(event, secrets)
                    if marker is not None:
                        await response.write(frame("marker", marker))
                    if event.get("event") in ("deployed", "failed", "step"):
                        await response.write(frame("state", _state(src, name)))
                    beat = time.monotonic()
                    event = sub.get_nowait()
                if time.monotonic() - beat > HEARTBEAT:
                    await response.write(b": keep-alive\n\n")
                    beat = time.monotonic()
        except ConnectionError:  # the client went away
            pass
    return response


def _since(request: web.Request) -> float | None:
    """`?since=T`: the page has the points up to T already (from series.json)."""
    try:
        return float(request.query["since"])
    except (KeyError, ValueError):
        return None


def _state(src: data.Sources, name: str) -> dict[str, Any]:
    serving = src.supervisor.serving.get(name)
    return {
        "release": serving.release if serving else None,
        "busy": src.supervisor.busy().get(name),
        "minute": src.series.last_minute(name),
    }


def routes() -> list[web.RouteDef]:
    return [
        web.get("/stream", overview_stream),
        web.get("/apps/{app}/stream", app_stream),
    ]
