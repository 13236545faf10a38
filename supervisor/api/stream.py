"""The one NDJSON streamer of the control API: deploys, builds and cron runs.

The work runs in its own task, so a client that goes away does not cancel a deploy or a build
half-way: it goes on to the end and is recorded. Each event is one JSON line (the events
queued while a write was under way go out in one write, so a burst of output lines is one
chunk, not thousands); the last line is `{"event": "result", ...}`, also when the work failed
(the headers are gone by then, so a failure is reported in the stream, never as a status).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from supervisor.model.errors import DockyardError

log = logging.getLogger("dockyard.supervisor")
Emit = Callable[[Mapping[str, Any]], None]
BATCH = 512  # events at most in one write (a build's or a cron run's output comes in bursts)
Work = Callable[[Emit], Awaitable[Mapping[str, Any]]]


async def stream(
    request: web.Request, work: Work, failed: Callable[[str], Mapping[str, Any]],
    *, finally_: Callable[[], None] | None = None,
) -> web.StreamResponse:
    """Stream `work`'s events, then `{"event": "result", **what it returned}`; when it raises,
    the result is `failed(reason)`. `finally_` runs when the work ends, however it ends (also
    when its task is cancelled before it started: the work's own `finally` would not run)."""
    queue: asyncio.Queue[Mapping[str, Any] | None] = asyncio.Queue()
    task = asyncio.ensure_future(work(queue.put_nowait))
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    if finally_ is not None:
        done = finally_
        task.add_done_callback(lambda _t: done())
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    try:
        await response.prepare(request)
        ended = False
        while not ended:  # one write per burst: the events queued meanwhile go with this one
            events = [await queue.get()]
            while not queue.empty() and len(events) < BATCH:
                events.append(queue.get_nowait())
            if events[-1] is None:  # the work's end is always the last thing queued
                ended = True
                events.pop()
            if events:
                await response.write(b"".join(orjson.dumps(event) + b"\n" for event in events))
        try:
            result = task.result()
        except (DockyardError, OSError) as exc:
            result = failed(str(exc))
        except Exception as exc:  # a bug: still a final line, and the log has the traceback
            log.error("streamed work failed error=%r", exc, exc_info=exc)
            result = failed(f"internal error: {exc.__class__.__name__}: {exc}")
        await response.write(orjson.dumps({"event": "result", **result}) + b"\n")
        await response.write_eof()
    except ConnectionError:
        log.info("client went away path=%s; the work goes on", request.path)
    return response
