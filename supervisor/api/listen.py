"""An aiohttp application on TCP ports of its own: `/metrics` on `metrics_listen`, the dashboard on
`dashboard_listen` and on its loopback port for the proxy. One helper, so both bind, fail and
report their ports the same way."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from supervisor.base.address import split_listen

log = logging.getLogger("dockyard.supervisor")


async def start(app: web.Application, listens: Sequence[str], what: str,
                shutdown_timeout: float = 60.0) -> web.AppRunner:
    """Serve `app` on each "HOST:PORT" of `listens` (port 0: any free one); stop with `await
    runner.cleanup()`. An OSError (the port is taken) leaves nothing bound."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        for listen in listens:
            host, port = split_listen(listen)
            await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("serving %s listen=%s ports=%s", what, ",".join(listens),
             ",".join(str(p) for p in bound_ports(runner)))
    return runner


def bound_ports(runner: web.AppRunner) -> list[int]:
    """The ports a `start` runner listens on, in the order of its `listens` (useful with port 0)."""
    ports = []
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            ports.append(int(server.sockets[0].getsockname()[1]))
    return ports


def bound_port(runner: web.AppRunner) -> int:
    """The port of a runner's first listener."""
    ports = bound_ports(runner)
    if not ports:
        raise RuntimeError("the runner has no listening site")
    return ports[0]
