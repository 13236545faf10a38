"""A probe of the proxy workers' event loops, for finding what delays requests around a swap.

    PYTHONPATH=bench/lagprobe python -m bench swap --app nginx --proxy-workers 2 --systems dockyard

Every Python process started with this directory on PYTHONPATH imports this file; it acts only
in `python -m proxy.worker` processes, which inherit the variable from `dockyard serve`. Each
worker writes /tmp/lagprobe-<pid>.log with wall-clock times (time.time()) of: every control
message it handles and how long that took (`op=table`, `warm`, `drain`, ...; `stats` only when
it took over 1 ms), every event-loop lag over 2 ms (a 1 ms timer that woke late), and every
gen-2 collection or any collection over 2 ms. Not for production: it slows the worker a little.
"""

from __future__ import annotations

import os
import sys

if "proxy.worker" in " ".join(getattr(sys, "orig_argv", [])):
    import asyncio
    import gc
    import time
    from typing import Any

    import uvloop

    OUT = open(f"/tmp/lagprobe-{os.getpid()}.log", "a", buffering=1)  # noqa: SIM115
    _gc_started = [0.0]

    def _gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc_started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - _gc_started[0]) * 1000
        if info.get("generation") == 2 or took > 2:
            OUT.write(f"{time.time():.4f} gc gen={info.get('generation')} ms={took:.1f}\n")

    async def _lag() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lag = (time.perf_counter() - before) * 1000 - 1
            if lag > 2:
                OUT.write(f"{time.time():.4f} lag ms={lag:.1f}\n")

    _run = uvloop.run

    def _traced_run(main: Any, **kwargs: Any) -> Any:
        worker_class = sys.modules["__main__"].Worker  # proxy/worker.py runs as __main__
        dispatch = worker_class._dispatch

        async def traced(self: Any, msg: dict[str, Any], writer: Any) -> Any:
            op, started = msg.get("op"), time.perf_counter()
            try:
                return await dispatch(self, msg, writer)
            finally:
                took = (time.perf_counter() - started) * 1000
                if op != "stats" or took > 1:
                    OUT.write(f"{time.time():.4f} op={op} ms={took:.2f}\n")

        worker_class._dispatch = traced

        async def both() -> Any:
            probe = asyncio.ensure_future(_lag())
            try:
                return await main
            finally:
                probe.cancel()

        return _run(both(), **kwargs)

    gc.callbacks.append(_gc)
    uvloop.run = _traced_run
