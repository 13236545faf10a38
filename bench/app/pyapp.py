"""dockyard's aiohttp fixture app: the busybox app's endpoints, plus keep-alive, WebSocket and SSE.

    /            "<APP_VERSION> <hostname>"
    /health      "ok" (404 when NEVER_HEALTHY is set)
    /slow?ms=N   sleeps N ms, answers "slow N <APP_VERSION>"
    /ws          WebSocket echo
    /sse?n=N&ms=M  N server-sent events, M ms apart
    /upload      POST: counts the body's bytes

Listens on $BIND:$PORT (default 0.0.0.0:5000). CRASH_AFTER=N exits with code 3 after N seconds.
ONE_WORKER=1 serves one request at a time, body included, as a single sync worker (gunicorn -w 1)
does; /health is exempt so health checks still pass.
"""

import asyncio
import os
import socket
import sys

from aiohttp import web

VERSION = os.environ.get("APP_VERSION", "v0")
HOSTNAME = socket.gethostname()


async def index(request):
    return web.Response(text=f"{VERSION} {HOSTNAME}\n")


async def health(request):
    if os.environ.get("NEVER_HEALTHY"):
        raise web.HTTPNotFound()
    return web.Response(text="ok\n")


async def slow(request):
    ms = int(request.query.get("ms", "0"))
    await asyncio.sleep(ms / 1000)
    return web.Response(text=f"slow {ms} {VERSION}\n")


async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == web.WSMsgType.TEXT:
            await sock.send_str(msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await sock.send_bytes(msg.data)
    return sock


async def sse(request):
    n = int(request.query.get("n", "3"))
    ms = int(request.query.get("ms", "100"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(n):
        await resp.write(f"data: {i} {VERSION}\n\n".encode())
        await asyncio.sleep(ms / 1000)
    return resp


async def upload(request):
    total = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        total += len(chunk)
    return web.Response(text=f"{total}\n")


async def crash_later(app):
    after = os.environ.get("CRASH_AFTER")
    if after:
        async def crash():
            await asyncio.sleep(float(after))
            print("pyapp: crashing as asked", file=sys.stderr, flush=True)
            os._exit(3)

        task = asyncio.ensure_future(crash())
        yield
        task.cancel()
    else:
        yield


@web.middleware
async def one_worker(request, handler):
    if request.path == "/health":
        return await handler(request)
    async with request.app["worker"]:
        return await handler(request)


def main():
    one = bool(os.environ.get("ONE_WORKER"))
    app = web.Application(client_max_size=0, middlewares=[one_worker] if one else [])
    app["worker"] = asyncio.Lock()
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/slow", slow)
    app.router.add_get("/ws", ws)
    app.router.add_get("/sse", sse)
    app.router.add_post("/upload", upload)
    app.cleanup_ctx.append(crash_later)
    web.run_app(
        app,
        host=os.environ.get("BIND", "0.0.0.0"),
        port=int(os.environ.get("PORT", "5000")),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
