"""Health checks with Dokku's semantics, run against one container.

All checks of a container run in parallel. Each check makes up to `attempts` attempts,
`initial_delay` seconds after the container started, `wait` seconds apart, each bounded by
`timeout`. Within one attempt, a connection that is refused or reset (the app is not
listening yet; Docker's port proxy accepts and then resets) is retried every 50 ms until the
attempt's timeout, so a fast app passes its first attempt instead of paying a full `wait`.

Check kinds, by the fields that are set: `path` (HTTP/HTTPS GET: status < 400, body contains
`content`), `command` (run inside the container: exit 0, output contains `content`),
`listening` (the port is in LISTEN state inside the container's network namespace) and
`uptime` (the container has been running at least that many seconds). With no checks at all,
Dokku's default applies: wait `default_checks_wait` seconds, then the container must still run.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp

from supervisor.model import defaults
from supervisor.model.spec import AppSpec, HealthCheckSpec
from supervisor.runtime.containers import LABEL_PORT
from supervisor.runtime.protocol import ContainerInfo, Runtime

RETRY_INTERVAL = 0.05  # seconds between connection attempts inside one attempt


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    name: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check needs to reach one container."""

    container: ContainerInfo
    app_port: int
    host_header: str | None  # the app's first host, sent when no httpHeaders set Host
    network: str  # bridge | host

    def listen_port(self, port: int) -> int:
        """The port the app listens on for the app's `port`: on host networking that is the
        $PORT dockyard assigned (label dockyard.port); any other check port is taken as is."""
        if self.network == "host" and port == self.app_port:
            assigned = self.container.labels.get(LABEL_PORT, "")
            if assigned.isdigit():
                return int(assigned)
        return port

    def address(self, port: int) -> tuple[str, int]:
        if self.network == "host":
            return self.container.host, self.listen_port(port)
        return self.container.host, self.container.ports.get(port, 0)


def check_host(app: AppSpec) -> str | None:
    """The Host header of HTTP checks without httpHeaders: the app's first host."""
    return app.hosts[0].replace("*.", "www.", 1) if app.hosts else None


class CheckFailed(Exception):
    pass


class CheckTimedOut(CheckFailed):
    """The attempt ran out of time without an answer: on an overloaded machine this says
    nothing about the app, unlike a refused connection or a bad status."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Literal["ok", "failed", "timeout"]
    error: str = ""


class _ConnectionLevel(Exception):
    """The app did not answer at the connection level; retried within the attempt."""


async def run_checks(
    runtime: Runtime,
    ctx: CheckContext,
    checks: tuple[HealthCheckSpec, ...],
    default_wait: float,
) -> CheckResult:
    """Run every check for one container; the first hard failure wins."""
    start = time.monotonic()
    if not checks:
        await asyncio.sleep(default_wait)
        info = await runtime.inspect(ctx.container.id)
        if info is None or not info.running:
            code = info.exit_code if info else None
            return CheckResult(False, "default", f"container is not running (exit code {code})")
        return CheckResult(True, "default", seconds=time.monotonic() - start)
    results = await asyncio.gather(*(run_one(runtime, ctx, c) for c in checks))
    for check, result in zip(checks, results, strict=True):
        if not result.ok and not check.warn:
            return result
    return CheckResult(True, ",".join(r.name for r in results), seconds=time.monotonic() - start)


def check_name(check: HealthCheckSpec) -> str:
    return check.name or check.path or check.type


async def run_one(runtime: Runtime, ctx: CheckContext, check: HealthCheckSpec) -> CheckResult:
    start = time.monotonic()
    name = check_name(check)
    started = ctx.container.started_at or time.time()
    delay = check.initial_delay - (time.time() - started)
    if delay > 0:
        await asyncio.sleep(delay)
    error = "no attempt made"
    for attempt in range(1, check.attempts + 1):
        if attempt > 1:
            await asyncio.sleep(check.wait)
        try:
            await _attempt(runtime, ctx, check)
            return CheckResult(True, name, seconds=time.monotonic() - start)
        except CheckFailed as exc:
            error = f"attempt {attempt}/{check.attempts}: {exc}"
        info = await runtime.inspect(ctx.container.id)
        if info is None or not info.running:
            code = info.exit_code if info else None
            error = f"container exited (exit code {code}) during check: {error}"
            break
    return CheckResult(False, name, error, time.monotonic() - start)


async def attempt_once(runtime: Runtime, ctx: CheckContext, check: HealthCheckSpec) -> str | None:
    """One attempt of one check (the periodic liveness/readiness probe): None or the error."""
    try:
        await _attempt(runtime, ctx, check)
    except CheckFailed as exc:
        return str(exc)
    return None


async def attempt_verdict(runtime: Runtime, ctx: CheckContext, check: HealthCheckSpec) -> Verdict:
    """One attempt of one check, telling a timeout apart from a failure."""
    try:
        await _attempt(runtime, ctx, check)
    except CheckTimedOut as exc:
        return Verdict("timeout", str(exc))
    except CheckFailed as exc:
        return Verdict("failed", str(exc))
    return Verdict("ok")


async def _attempt(runtime: Runtime, ctx: CheckContext, check: HealthCheckSpec) -> None:
    port = check.port or ctx.app_port
    if check.uptime:
        info = await runtime.inspect(ctx.container.id)
        if info is None or not info.running or info.started_at is None:
            raise CheckFailed("container is not running")
        remaining = check.uptime - (time.time() - info.started_at)
        if remaining > 0:
            await asyncio.sleep(remaining)
            again = await runtime.inspect(ctx.container.id)
            if again is None or not again.running or again.started_at != info.started_at:
                raise CheckFailed(f"container did not stay up for {check.uptime:g}s")
    if check.listening:
        await _until(check.timeout, lambda: _listening(ctx.container.pid, ctx.listen_port(port)))
    if check.command:
        result = await runtime.exec(ctx.container.id, check.command, check.timeout)
        if result.exit_code != 0:
            raise CheckFailed(f"command exited {result.exit_code}: {result.output.strip()[:200]}")
        if check.content and check.content not in result.output:
            raise CheckFailed(f"command output does not contain {check.content!r}")
    if check.path is not None:
        await _until(check.timeout, lambda: _http(ctx, check, port))


async def _until(timeout: float, probe: object) -> None:
    """Run `probe` until it passes; connection-level failures retry until `timeout`."""
    deadline = time.monotonic() + timeout
    last = "timed out"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CheckFailed(f"{last} (timeout {timeout:g}s)")
        try:
            await asyncio.wait_for(probe(), remaining)  # type: ignore[operator]
            return
        except _ConnectionLevel as exc:
            last = str(exc)
        except TimeoutError:
            raise CheckTimedOut(f"timed out after {timeout:g}s") from None
        await asyncio.sleep(min(RETRY_INTERVAL, max(0.0, deadline - time.monotonic())))


def _headers(ctx: CheckContext, check: HealthCheckSpec) -> Mapping[str, str]:
    headers = {"User-Agent": "dockyard-healthcheck", "Accept-Encoding": "identity"}
    headers.update(dict(check.http_headers))
    if ctx.host_header and not any(k.lower() == "host" for k in headers):
        headers["Host"] = ctx.host_header
    return headers


async def _http(ctx: CheckContext, check: HealthCheckSpec, port: int) -> None:
    host, host_port = ctx.address(port)
    if not host_port:
        raise CheckFailed(f"port {port} is not published")
    path = check.path if (check.path or "").startswith("/") else f"/{check.path or ''}"
    url = f"{check.scheme}://{host}:{host_port}{path}"
    ssl_ctx: ssl.SSLContext | bool = False if check.scheme == "https" else True
    try:
        async with aiohttp.ClientSession(auto_decompress=False, trust_env=False) as session:
            async with session.get(
                url, headers=_headers(ctx, check), allow_redirects=False, ssl=ssl_ctx
            ) as resp:
                body = await read_head(resp.content, defaults.CHECK_BODY_MAX) if check.content else ""
    except (aiohttp.ClientConnectionError, ConnectionError) as exc:
        raise _ConnectionLevel(f"GET {path}: {exc.__class__.__name__}: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise CheckFailed(f"GET {path}: {exc}") from exc
    if resp.status >= 400:
        raise CheckFailed(f"GET {path} answered {resp.status}")
    if check.content and check.content not in body:
        raise CheckFailed(f"GET {path}: body does not contain {check.content!r}")


async def read_head(stream: aiohttp.StreamReader, limit: int) -> str:
    """The first `limit` bytes of a response body (a `content` check looks no further)."""
    data = bytearray()
    while len(data) < limit:
        chunk = await stream.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data).decode(errors="replace")


async def _listening(pid: int, port: int) -> None:
    """Whether `port` is in LISTEN state in the network namespace of `pid` (read from /proc)."""
    if not pid:
        raise CheckFailed("container is not running")
    wanted = f":{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            text = await asyncio.to_thread(_read, f"/proc/{pid}/net/{name}")
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":
                return
    raise _ConnectionLevel(f"nothing listens on port {port}")


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()
