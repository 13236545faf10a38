"""The data plane in worker processes (supervisor/daemon/dataplane/): tables, drain, figures, faults."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy import ProxyOptions
from supervisor.daemon.dataplane import WorkerPool, find_orphans, retire_orphans, take_listeners
from tests.proxy.utils import backend, free_port

OPTIONS = ProxyOptions(upstream_connect_timeout=0.5, upstream_response_timeout=5.0)


@asynccontextmanager
async def pool(tmp_path: Path, count: int = 2) -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(OPTIONS, count, tmp_path / "workers")
    await workers.start("127.0.0.1", 0)
    try:
        await workers.launch()
        yield workers
    finally:
        await workers.stop(1.0)


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


async def test_drain_waits_for_requests_in_both_workers_and_figures_are_summed(tmp_path: Path) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="slow")

    async with backend([("GET", "/", slow)]) as old, backend(named("new")) as new, pool(tmp_path) as workers:
        workers.set_app("a", ["h"], [old])
        await workers.settled()
        async def spaced() -> list[tuple[int, str]]:  # spaced out, so both workers accept some
            waves = []
            for _ in range(8):
                waves.append(asyncio.ensure_future(fetch(workers.port, 2)))
                await asyncio.sleep(0.02)
            return [r for wave in await asyncio.gather(*waves) for r in wave]

        requests = asyncio.ensure_future(spaced())
        deadline = time.monotonic() + 1.0
        while workers.inflight() != {old: 16} and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            await workers.refresh()
        assert workers.inflight() == {old: 16}
        busy = [w for w in workers._workers.values() if w.inflight.get(old)]
        assert len(busy) == 2  # both workers took some
        workers.set_app("a", ["h"], [new])
        await workers.settled()
        started = time.monotonic()
        assert await workers.drain([old], timeout=5.0) == 0
        assert 0.1 < time.monotonic() - started < 3.0  # it waited for them (none was cancelled)
        assert {body for _, body in await requests} == {"slow"}
        assert {body for _, body in await fetch(workers.port, 4)} == {"new"}
        await workers.refresh()
        stats = workers.stats_all()["a"]
        assert stats["requests"] == 20 and stats["status"]["2xx"] == 20 and stats["inflight"] == 0
        assert sum(stats["latency_buckets"].values()) == 20
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
from proxy import ProxyOptions
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


async def test_workers_outlive_a_killed_supervisor_and_a_new_one_replaces_them(tmp_path: Path) -> None:
    async with backend(named("one")) as one:
        sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path / "workers"), one],
                               stdout=subprocess.PIPE)
        assert sup.stdout is not None
        line = await asyncio.to_thread(sup.stdout.readline)
        port, *pids = map(int, line.split())
        try:
            sup.kill()  # kill -9
            sup.wait()
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
            await workers.stop(1.0)
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

    from supervisor.tls.acme import start_tls
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
        finally:
            await tls.close()
            await workers.stop(1.0)


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
