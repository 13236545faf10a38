"""Run one cron container to completion, streaming its output lines as they come.

Everything goes through the `Runtime` protocol: the container is started with `run`, its output
followed with `follow_output`, stopped, inspected and (by the caller) removed. Apps on Swarm
run a `replicated-job` service instead (`run_oneoff`, runtime/swarm.py), whose lines are handed
over when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.runtime.outputtail import OutputTail
from supervisor.runtime.protocol import ContainerSpec, OneOffResult, Runtime

OnOutput = Callable[[str], None]
EXIT_POLL = 0.05  # seconds between inspections once the log stream has ended
EXIT_WAIT = 10.0  # how long the engine may take to report an exit after the logs end
__all__ = ["Handle", "OnOutput", "OutputTail", "run_streaming"]


@dataclass(slots=True)
class Handle:
    """A run in progress: lets the scheduler stop it (replace) or see its container."""

    container_id: str = ""
    stop_requested: bool = False


async def run_streaming(
    runtime: Runtime,
    spec: ContainerSpec,
    *,
    timeout: float | None,
    tail: OutputTail,
    on_output: OnOutput | None,
    handle: Handle,
    stop_timeout: float,
) -> OneOffResult:
    """Start `spec`, stream its output into `tail` (and `on_output`), wait for it to exit.

    The caller removes the container (handle.container_id) when it is done with it.
    """
    if spec.scheduler == "swarm":  # a swarm job
        result = await runtime.run_oneoff(spec, timeout)
        for line in tail.feed(result.output.encode()) + tail.flush():
            if on_output:
                on_output(line)
        return result
    info = await runtime.run(spec)
    handle.container_id = info.id
    if handle.stop_requested:
        await runtime.stop(info.id, stop_timeout)
    loop = asyncio.get_running_loop()

    async def drain() -> None:
        async for chunk in runtime.follow_output(info.id):
            for line in tail.feed(chunk):
                if on_output:
                    on_output(line)

    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(drain_task := asyncio.ensure_future(drain())), timeout)
    except TimeoutError:
        timed_out = True
        await runtime.stop(info.id, stop_timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain_task, stop_timeout + EXIT_WAIT)
    finally:
        if not drain_task.done():
            drain_task.cancel()
    for line in tail.flush():
        if on_output:
            on_output(line)
    exit_code = -1
    deadline = loop.time() + EXIT_WAIT
    while loop.time() < deadline:
        current = await runtime.inspect(info.id)
        if current is None:
            break
        if not current.running and current.exit_code is not None:
            exit_code = current.exit_code
            break
        await asyncio.sleep(EXIT_POLL)
    return OneOffResult(exit_code, tail.text(), timed_out)
