"""The data plane in worker processes (supervisor/daemon/dataplane/): tables, drain, figures, faults."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy import Proxy, ProxyOptions, route_message
from proxy.errors import RouteConflictError
from proxy.policy import BasicAuth, Policy, Redirect
from proxy.routes import Maintenance, Rollout, Route, Service
from supervisor.daemon.dataplane import (
    WorkerPool,
    adopt_workers,
    find_orphans,
    retire_orphans,
    take_listeners,
)
from tests.proxy.utils import TEARDOWN_GRACE, backend, free_port


def free_target() -> str:
    return f"127.0.0.1:{free_port()}"

OPTIONS = ProxyOptions(upstream_connect_timeout=0.5, upstream_response_timeout=5.0)


@asynccontextmanager
async def pool(tmp_path: Path, count: int = 2) -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(OPTIONS, count, tmp_path / "workers")
    await workers.start("127.0.0.1", 0)
    try:
        await workers.launch()
        yield workers
    finally:
        await workers.stop(TEARDOWN_GRACE)


async def fetch(port: int, n: int, host: str = "h", path: str = "/") -> list[tuple[int, str]]:
    """n requests, each on its own connection (so the workers share them)."""

    async def one() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}", headers={"Host": host}
        ) as resp:
            return resp.status, await resp.text()

    return list(await asyncio.gather(*(one() for _ in range(n))))


def named(name: str) -> list[tuple[str, str, object]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=name)

    return [("GET", "/", handler)]


async def test_table_installed_in_every_worker_and_acknowledged(tmp_path: Path) -> None:
    async with backend(named("one")) as one, backend(named("two")) as two, pool(tmp_path) as workers:
        assert len(workers.pids) == 2
        workers.set_app("a", ["h"], [one])
        slowest = await workers.settled()
        assert 0 <= slowest < 1.0
        assert {body for _, body in await fetch(workers.port, 20)} == {"one"}
        workers.set_app("a", ["h"], [two])
        await workers.settled()
        # Once settled, no worker sends a request to the old target.
        assert {body for _, body in await fetch(workers.port, 40)} == {"two"}
        workers.remove_app("a")
        await workers.settled()
        assert {status for status, _ in await fetch(workers.port, 10)} == {404}


async def test_workers_run_at_worker_priority(tmp_path: Path) -> None:
    """`[proxy] worker_priority` (-5 by default): the data plane wins the CPU on a busy box.
    Lowering a nice value needs root or CAP_SYS_NICE; without it the workers keep ours."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    async with pool(tmp_path) as workers:
        nices = {os.getpriority(os.PRIO_PROCESS, pid) for pid in workers.pids}
    can_raise = os.geteuid() == 0
    assert nices == ({OPTIONS.worker_priority} if can_raise else {ours}), (nices, ours)
    assert OPTIONS.worker_priority == -5


async def test_a_host_moves_between_apps_in_one_table_message(tmp_path: Path) -> None:
    """A reload's replace_routes (issue #18 item 4) through the workers: one message, no 404 in
    between; a conflict raises before any worker is sent anything."""
    async with backend(named("one")) as one, backend(named("two")) as two, pool(tmp_path) as workers:
        workers.set_app("a", ["h", "old"], [one])
        workers.set_app("b", ["other"], [two])
        await workers.settled()
        seq = workers._seq
        workers.replace_routes({"a": Route(("old",), (one,)), "b": Route(("other", "h"), (two,))})
        assert workers._seq == seq + 1  # one table message for both apps
        await workers.settled()
        assert {body for _, body in await fetch(workers.port, 20)} == {"two"}
        with pytest.raises(RouteConflictError):
            workers.replace_routes({"a": Route(("h",), (one,))})  # b still holds h
        assert workers._seq == seq + 1
        assert {body for _, body in await fetch(workers.port, 10)} == {"two"}


async def test_drain_waits_for_requests_in_both_workers_and_figures_are_summed(tmp_path: Path) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="slow")

    async with backend([("GET", "/", slow)]) as old, backend(named("new")) as new, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [old])
        await workers.settled()
        def busy() -> int:
            return len([w for w in workers._workers.values() if w.inflight.get(old)])

        # Waves of 2 spaced out until both workers hold some: which worker the kernel hands a
        # connection of the shared listening socket is its choice (8 fixed waves once all
        # landed in one worker).
        waves = []
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline and (len(waves) < 8 or busy() < 2):
            waves.append(asyncio.ensure_future(fetch(workers.port, 2)))
            await asyncio.sleep(0.02)
            await workers.refresh()
        sent = 2 * len(waves)
        requests = asyncio.gather(*waves)
        deadline = time.monotonic() + 1.0
        while workers.inflight() != {old: sent} and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            await workers.refresh()
        assert workers.inflight() == {old: sent}
        assert busy() == 2  # both workers took some
        workers.set_app("a", ["h"], [new])
        await workers.settled()
        started = time.monotonic()
        assert await workers.drain([old], timeout=5.0) == 0
        assert 0.1 < time.monotonic() - started < 3.0  # it waited for them (none was cancelled)
        assert {body for wave in await requests for _, body in wave} == {"slow"}
        assert {body for _, body in await fetch(workers.port, 4)} == {"new"}
        await workers.refresh()
        stats = workers.stats_all()["a"]
        assert stats["requests"] == sent + 4 and stats["status"]["2xx"] == sent + 4 and stats["inflight"] == 0
        assert sum(stats["latency_buckets"].values()) == sent + 4
        assert workers.inflight() == {}
        opened, limit = workers.connection_counts()
        assert limit >= 2 and opened >= 0


async def test_drain_timeout_cancels_in_every_worker(tmp_path: Path) -> None:
    async def stuck(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async with backend([("GET", "/", stuck)]) as old, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [old])
        await workers.settled()
        requests = asyncio.ensure_future(fetch(workers.port, 8))
        await asyncio.sleep(0.3)
        assert await workers.drain([old], timeout=0.2) == 8
        assert {status for status, _ in await requests} == {504}


async def test_killed_worker_is_replaced_with_the_current_table(tmp_path: Path) -> None:
    async with backend(named("one")) as one, backend(named("two")) as two, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [one])
        await workers.settled()
        assert {body for _, body in await fetch(workers.port, 10)} == {"one"}
        await workers.refresh()
        victim = workers.pids[0]
        os.kill(victim, signal.SIGKILL)
        workers.set_app("a", ["h"], [two])  # a swap while one worker is down
        await workers.settled()
        deadline = time.monotonic() + 3
        while (victim in workers.pids or len([w for w in workers._workers.values() if w.serving]) < 2) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert victim not in workers.pids and len(workers.pids) == 2 and workers.respawned == 1
        assert {body for _, body in await fetch(workers.port, 30)} == {"two"}
        await workers.refresh()
        assert workers.stats_all()["a"]["requests"] >= 40  # the dead worker's counts are kept


SUPERVISOR = """
import asyncio, sys
from pathlib import Path
from proxy import Proxy, ProxyOptions, route_message
from proxy.policy import BasicAuth, Policy, Redirect
from proxy.routes import Maintenance, Rollout, Service
from supervisor.daemon.dataplane import WorkerPool

async def main():
    pool = WorkerPool(ProxyOptions(), 2, Path(sys.argv[1]))
    await pool.start("127.0.0.1", 0)
    pool.set_app("a", ["h"], [sys.argv[2]])
    await pool.launch()
    print(pool.port, *pool.pids, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def orphaned(tmp_path: Path, target: str) -> tuple[int, list[int]]:
    """A supervisor (SUPERVISOR, 2 workers routing to `target`) killed with -9: its port and
    its workers' pids (they serve on; the caller kills them at the end)."""
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path / "workers"), target],
                           stdout=subprocess.PIPE)
    assert sup.stdout is not None
    line = await asyncio.to_thread(sup.stdout.readline)
    sup.kill()
    sup.wait()
    port, *pids = map(int, line.split())
    return port, pids


async def test_workers_outlive_a_killed_supervisor_and_a_new_one_replaces_them(tmp_path: Path) -> None:
    async with backend(named("one")) as one:
        port, pids = await orphaned(tmp_path, one)
        try:
            await asyncio.sleep(0.2)
            assert {r for r in await fetch(port, 20)} == {(200, "one")}  # the last table serves on
            orphans = await find_orphans(tmp_path / "workers")
            assert sorted(o.pid for o in orphans) == sorted(pids)
            listeners = await take_listeners(orphans)
            assert [s.getsockname()[1] for s in listeners] == [port]
            # A new pool on the same socket, then the orphans go: no request fails meanwhile.
            workers = WorkerPool(OPTIONS, 2, tmp_path / "workers")
            await workers.start("127.0.0.1", 0, sock=listeners[0])
            workers.set_app("a", ["h"], [one])
            load = asyncio.ensure_future(fetch(port, 50))
            await workers.launch()
            await retire_orphans(orphans, 1.0)
            assert {r for r in await load} == {(200, "one")}
            deadline = time.monotonic() + 5
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not any(_alive(p) for p in pids)
            assert {r for r in await fetch(port, 20)} == {(200, "one")}
            await workers.stop(TEARDOWN_GRACE)  # the test is over: nothing in flight
        finally:
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


async def test_a_new_supervisor_adopts_the_workers_of_a_killed_one_when_they_match(tmp_path: Path) -> None:
    """Same options, same code: the new supervisor attaches to the running workers and sends its
    table (no process started, none stopped); other options: every orphan is to be replaced."""
    async with backend(named("one")) as one, backend(named("two")) as two:
        port, pids = await orphaned(tmp_path, one)
        try:
            orphans = await find_orphans(tmp_path / "workers")
            assert len(orphans) == 2
            listeners = await take_listeners(orphans)
            other = WorkerPool(OPTIONS, 2, tmp_path / "workers")  # other timeouts: not adoptable
            assert await adopt_workers(other, orphans) == orphans and other.pids == []
            workers = WorkerPool(ProxyOptions(), 2, tmp_path / "workers")
            await workers.start("127.0.0.1", 0, sock=listeners[0])
            workers.set_app("a", ["h"], [two])
            load = asyncio.ensure_future(fetch(port, 50))
            assert await adopt_workers(workers, orphans) == []
            await workers.launch()  # nothing to start
            assert sorted(workers.pids) == sorted(pids) and workers.respawned == 0
            assert {r for r in await load} <= {(200, "one"), (200, "two")}
            assert {r for r in await fetch(port, 20)} == {(200, "two")}  # our table, their processes
            victim = pids[0]
            os.kill(victim, signal.SIGKILL)  # an adopted worker that dies is replaced as ours are
            deadline = time.monotonic() + 5
            while (victim in workers.pids or len(workers.pids) < 2) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert victim not in workers.pids and len(workers.pids) == 2 and workers.respawned == 1
            await workers.stop(TEARDOWN_GRACE)
            assert not any(_alive(p) for p in pids)
        finally:
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone too (our test process is not its parent: it is reaped by init).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_worker_killed_under_load_fails_only_its_own_requests(tmp_path: Path) -> None:
    """Reported, not asserted to zero: a killed worker's accepted connections are reset. The
    requests in flight on them fail, and so can the next request on an idle keep-alive
    connection it held (a client cannot tell that from a failure of a sent request)."""
    from tests.utils import Load

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.005)
        return web.Response(text="ok")

    async with backend([("GET", "/", handler)]) as target, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [target])
        await workers.settled()
        async with Load(f"http://127.0.0.1:{workers.port}/", "h", rate=400) as load:
            await asyncio.sleep(0.7)
            victim = workers.pids[0]
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            while (victim in workers.pids or len([w for w in workers._workers.values() if w.serving]) < 2) \
                    and time.monotonic() - killed < 3:
                await asyncio.sleep(0.005)
            replaced = time.monotonic() - killed
            await asyncio.sleep(0.7)
        print(f"\nworker killed under 400 req/s: replaced after {replaced * 1000:.0f} ms, "
              f"{len(load.failures)} of {len(load.results) + len(load.errors)} requests failed: "
              f"{sorted({e for _, e in load.errors})[:3]}")
        assert replaced < 1.5
        assert len(load.failures) <= 16  # the victim's connections (Load keeps at most 16)
        assert load.results and all(s == 200 for _, _, s, _ in load.results)


async def test_certificates_and_acme_challenges_reach_every_worker(tmp_path: Path) -> None:
    import trustme

    from supervisor.tls.service import start_tls
    from tests.tls.utils import client_context, request, write_pair
    from tests.utils import make_config

    ca = trustme.CA()
    crt, key = write_pair(ca, tmp_path, "a", "a.test")
    config = make_config(tmp_path, {"a": {"image": "x:1", "hosts": ["a.test"], "tls": "manual",
                                          "tls_cert": crt, "tls_key": key}},
                         tls_listen=f"127.0.0.1:{free_port()}")
    async with backend(named("one")) as one:
        workers = WorkerPool(OPTIONS, 2, tmp_path / "workers")
        await workers.start("127.0.0.1", 0)
        tls = await start_tls(config, workers)
        assert tls is not None
        workers.set_app("a", ["a.test"], [one], tls_redirect=True)
        try:
            await workers.launch()
            edge = workers.enable_edge()
            edge.challenges["tok"] = "tok.key"
            await workers.refresh()  # a round trip: the challenges message went before it
            for _ in range(4):  # fresh connections, so both workers answer some
                reply = await request(workers.tls_port, "a.test", tls=client_context(ca))
                assert (reply.status, reply.body) == (200, b"one")
                challenge = await request(workers.port, "a.test", "/.well-known/acme-challenge/tok")
                assert (challenge.status, challenge.body) == (200, b"tok.key")
                assert (await request(workers.port, "a.test")).status == 308
            victim = workers.pids[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 3
            while (victim in workers.pids or len([w for w in workers._workers.values() if w.serving]) < 2) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            edge.challenges.pop("tok")
            await workers.refresh()
            for _ in range(4):
                reply = await request(workers.tls_port, "a.test", tls=client_context(ca))
                assert (reply.status, reply.body) == (200, b"one")
                assert (await request(workers.port, "a.test", "/.well-known/acme-challenge/tok")).status == 404
            renewed = trustme.CA()  # the same files, rotated: every worker reads them again
            assert write_pair(renewed, tmp_path, "a", "a.test") == (crt, key)
            tls.apply(config)
            await workers.refresh()
            for _ in range(4):
                reply = await request(workers.tls_port, "a.test", tls=client_context(renewed))
                assert (reply.status, reply.body) == (200, b"one")
        finally:
            await tls.close()
            await workers.stop(TEARDOWN_GRACE)  # the test is over: nothing in flight


async def test_a_canary_route_reaches_every_worker_and_release_counters_are_summed(tmp_path: Path) -> None:
    async with backend(named("one")) as one, backend(named("two")) as two, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [one], release="1", canary_release="2", canary_targets=[two], canary_percent=50)
        await workers.settled()
        bodies = [body for _, body in await fetch(workers.port, 60)]
        assert set(bodies) == {"one", "two"}
        await workers.refresh()
        counted = workers.release_stats("a")
        assert counted["1"]["requests"] == bodies.count("one") and counted["2"]["requests"] == bodies.count("two")
        assert set(workers.release_stats_all()) == {"a"}
        workers.set_app("a", ["h"], [two], release="2")  # promoted
        await workers.settled()
        assert {body for _, body in await fetch(workers.port, 20)} == {"two"}


# -- the table message carries every Service field (proxy/route_message.py) -------------------------
HASH = "$2b$04$1N9J4cqCqmjQbjfRhbK/keqhgo.38IH/jSIcKHej7tDS3QrbYpXlO"  # bcrypt of "pw"


def every_field_set() -> dict[str, Any]:
    """set_app's arguments with every value away from its default."""
    policy = Policy(
        buffer_requests=False, buffer_responses=True, request_buffer_memory=4096, canonical_host="h",
        redirects=(Redirect("/old", "/new", 308, True),), strip_prefix=True,
        basic_auth=BasicAuth("/etc/dockyard/users", (("ann", HASH),), "Staff", ("/health",)),
        allow=("127.0.0.0/8",), deny=("10.0.0.0/8",), compress=False, compress_min_size=10,
        headers=(("X-A", "1"),), request_headers=(("X-B", "2"),), security_headers=True,
        max_body_size=1000, upstream_response_timeout=3.5, client_body_timeout=2.5)
    return {"path_prefix": "/app", "balance": "least_inflight", "tls_redirect": True, "hsts": 60,
            "release": "1", "canary_release": "2", "canary_targets": ["127.0.0.1:2"], "canary_percent": 25.0,
            "maintenance": Maintenance("back soon", 120),
            "error_pages": {502: b"<h1>bad gateway</h1>\xff", 503: b"<h1>later</h1>"}, "policy": policy}


def defaults_left(value: Any, path: str = "") -> list[str]:
    """Fields of `value` (and the dataclasses in it) still at their default; a Rollout's
    stable/canary Services are the app's own, narrowed, and are not walked."""
    left = []
    for f in dataclasses.fields(value):
        if not f.compare:
            continue
        field_value = getattr(value, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if field_value == default:
            left.append(path + f.name)
        items = field_value if isinstance(field_value, tuple) else (field_value,)
        for item in items:
            if dataclasses.is_dataclass(item) and not (isinstance(value, Rollout) and isinstance(item, Service)):
                left += defaults_left(item, f"{path}{f.name}.")
    return left


async def test_every_service_field_reaches_every_worker(tmp_path: Path) -> None:
    """A Service with every field set goes through the pool and the real channel to two real
    workers; each worker's installed Service equals the in-process proxy's, field by field. A
    new Service (or Policy, Maintenance, Rollout) field must be set above, and fails here until
    proxy/route_message.py carries it."""
    kwargs = every_field_set()
    local = Proxy(OPTIONS)
    local.set_app("a", ["h", "*.h"], ["127.0.0.1:1"], **kwargs)
    service = local.table.services["a"]
    assert defaults_left(service) == []
    expected = route_message.plain(service)
    assert set(expected) == {f.name for f in dataclasses.fields(Service) if f.compare}
    async with pool(tmp_path) as workers:
        workers.set_app("a", ["h", "*.h"], ["127.0.0.1:1"], **kwargs)
        await workers.settled()
        tables = await workers.tables()
        assert len(tables) == 2
        for table in tables:
            (installed,) = table["routes"]
            for name, value in expected.items():
                assert installed[name] == value, f"worker {table['pid']}: Service.{name} not carried"
            assert installed == expected


async def test_maintenance_error_pages_and_policy_apply_in_every_worker(tmp_path: Path) -> None:
    """What the workers install also applies there: maintenance, the app's own error pages, an
    edge policy (headers, basic auth with the hashes the supervisor sent, deny)."""
    policy = Policy(headers=(("X-Policy", "on"),),
                    basic_auth=BasicAuth("users", (("ann", HASH),), exempt=("/open",)))
    pages = {502: b"<h1>our own 502</h1>", 503: b"<h1>our own 503</h1>"}
    auth = {"Authorization": "Basic " + base64.b64encode(b"ann:pw").decode()}

    async def get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}", headers={"Host": "h", **(headers or {})}
        ) as resp:
            return resp.status, await resp.text(), resp.headers

    async with backend(named("one")) as one, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [one], maintenance=Maintenance("back soon", 30), error_pages=pages)
        await workers.settled()
        for status, body, headers in await asyncio.gather(*(get(workers.port) for _ in range(10))):
            assert (status, headers.get("Retry-After")) == (503, "30") and "back soon" in body

        workers.set_app("a", ["h"], [], error_pages=pages)  # no target: the proxy's 503, the app's page
        await workers.settled()
        for status, body, _ in await asyncio.gather(*(get(workers.port) for _ in range(10))):
            assert status == 503 and "our own 503" in body

        workers.set_app("a", ["h"], [free_target()], error_pages=pages)  # nothing listens there
        await workers.settled()
        for status, body, _ in await asyncio.gather(*(get(workers.port) for _ in range(10))):
            assert status == 502 and "our own 502" in body

        workers.set_app("a", ["h"], [one], policy=policy)
        await workers.settled()
        answers = await asyncio.gather(*(get(workers.port) for _ in range(10)),
                                       *(get(workers.port, headers=auth) for _ in range(10)),
                                       *(get(workers.port, "/open") for _ in range(10)))
        assert {a[0] for a in answers[:10]} == {401}
        assert {(a[0], a[1], a[2].get("X-Policy")) for a in answers[10:20]} == {(200, "one", "on")}
        assert {a[0] for a in answers[20:]} == {200}

        workers.set_app("a", ["h"], [one], policy=Policy(deny=("127.0.0.1/32",)))  # integ2's check
        await workers.settled()
        assert {status for status, _ in await fetch(workers.port, 20)} == {403}


async def test_a_worker_reports_a_target_it_cannot_connect_to(tmp_path: Path) -> None:
    """Passive health across the process boundary: each worker that fails to connect to a target
    sends one event (at most one per target every 0.5 s), the pool hands it to its callback."""
    dead = free_target()
    reports: list[tuple[str, str]] = []
    async with backend(named("one")) as one, pool(tmp_path) as workers:
        workers.on_target_failed(lambda app, target: reports.append((app, target)))
        workers.set_app("a", ["h"], [dead, one])
        await workers.settled()
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            for _ in range(20):  # half start on the dead target; GETs are retried on `one`
                async with session.get(f"http://127.0.0.1:{workers.port}/", headers={"Host": "h"}) as resp:
                    assert resp.status == 200
        await _until_true(lambda: bool(reports))
        assert set(reports) == {("a", dead)}
        # 2 workers, each at most one report of a target every 0.5 s (10 failed connections)
        assert len(reports) <= 2 * (int((time.monotonic() - started) / 0.5) + 1)


async def _until_true(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
