"""The one door to the Docker engine: the SDK client, its timeout policy, and its errors as ours.

Every Docker SDK client dockyard makes is made here (`connect`), so there is one place that
says how long an engine call may take: the daemon's runtimes (runtime/docker.py, swarm.py,
builds) use API_TIMEOUT, the `validate` probe PROBE_TIMEOUT, and the CLI's attached terminals
(`dockyard run`, `enter`, `logs -f`) STREAM_TIMEOUT (none: a quiet stream is not a dead one).

The SDK is imported lazily: the CLI imports this module, and only the commands that talk to the
engine should pay the ~75 ms the import costs. `EngineClient` is the base of the runtimes: the
client made on first use and `_call`, a blocking SDK call off the event loop with the SDK's
errors turned into RuntimeFailure (NotFound stays itself, for the callers that test for it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

from supervisor.model.errors import EngineUnreachable, RuntimeFailure

API_TIMEOUT = 60.0  # seconds one engine API call may take (the daemon's runtimes, builds)
PROBE_TIMEOUT = 10.0  # `dockyard validate` asking whether the engine is a Swarm manager
STREAM_TIMEOUT: float | None = None  # attached terminals and followed logs: no read timeout
T = TypeVar("T")


def connect(timeout: float | None = API_TIMEOUT) -> Any:
    """A Docker SDK client from the environment (DOCKER_HOST...); RuntimeFailure when none answers."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
    except docker.errors.DockerException as exc:
        raise RuntimeFailure(f"cannot reach the Docker engine: {exc}") from exc
    if client.api.base_url.startswith("http+docker://"):  # a unix socket: no proxy, netrc or CA applies
        client.api.trust_env = False  # requests then skips reading them per call: ~0.1 of ~0.6 ms
    return client


def is_sdk_error(exc: BaseException) -> bool:
    """Whether `exc` is the Docker SDK's (an API refusal, a lost connection...)."""
    import docker.errors

    return isinstance(exc, docker.errors.DockerException)


def is_not_found(exc: BaseException) -> bool:
    """Whether `exc` says the container, image or service does not exist (any more)."""
    import docker.errors

    return isinstance(exc, docker.errors.NotFound)


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the engine went away (dockerd stopped or restarting: docs/lifecycle.md)."""
    import requests.exceptions

    return isinstance(exc, requests.exceptions.ConnectionError)


def message(exc: BaseException) -> str:
    """The engine's own words for a refusal (its `explanation`), else the error's text."""
    return str(getattr(exc, "explanation", None) or exc)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """The SDK's errors as RuntimeFailure with the engine's words (one line, no traceback)."""
    try:
        yield
    except RuntimeFailure:
        raise
    except Exception as exc:
        if not is_sdk_error(exc):
            raise
        raise RuntimeFailure(message(exc)) from exc


async def stream_in_thread(items: Iterable[T], name: str) -> AsyncIterator[T]:
    """The items of a blocking SDK stream (events, followed logs), read by a daemon thread.

    A daemon thread, not the loop's executor: a stream left open at shutdown must not hold the
    loop's shutdown up. Ends when the stream ends or fails (a closed stream, a vanished
    container); the stream is closed when the consumer leaves. The thread wakes the loop once
    per batch, not per item: items that arrive while the loop is busy wait in one list (a
    cron run's output came as thousands of items, each a wakeup of the loop, issue #19).
    """
    import asyncio  # here, not at the top: the CLI imports this module and never streams

    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    pending: list[tuple[T] | None] = []  # None: the stream ended
    lock = threading.Lock()

    def put(item: tuple[T] | None) -> None:
        with lock:
            pending.append(item)
            if len(pending) > 1:
                return  # a wakeup is on its way for this batch
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(ready.set)

    def pump() -> None:
        try:
            for item in items:
                put((item,))
        except Exception:  # the stream was closed, or its container went away
            pass
        finally:
            put(None)

    threading.Thread(target=pump, name=name, daemon=True).start()
    try:
        while True:
            await ready.wait()
            ready.clear()
            with lock:
                batch = pending[:]
                pending.clear()
            for got in batch:
                if got is None:
                    return
                yield got[0]
    finally:
        closer: Callable[[], object] | None = getattr(items, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                closer()


class EngineClient:
    """What DockerRuntime and SwarmRuntime share: one client, made on first use, and `_call`."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(API_TIMEOUT)
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import asyncio  # see stream_in_thread()

        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            if is_unreachable(exc):
                raise EngineUnreachable(f"cannot reach the Docker engine: {exc}") from exc
            if is_not_found(exc) or not is_sdk_error(exc):
                raise
            raise RuntimeFailure(str(exc)) from exc
