"""`dockyard loadtest` without Docker: the report's maths, the swap schedule and the choice of
the next swap, the target's safety rules, and the generator's paths and headers on the wire."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from supervisor.cli.loadtest import report, target
from supervisor.cli.loadtest.command import check_options
from supervisor.cli.loadtest.errors import LoadTestError
from supervisor.cli.loadtest.generator import LoadResult, LoadRun, Target
from supervisor.cli.loadtest.swaps import WINDOW_AFTER, Driver, Swap, perform
from supervisor.model.errors import ControlError
from tests.utils import make_config

T0 = 1000.0


def result(rows: list[tuple[float, float, str]], rate: float = 10.0, duration: float = 10.0) -> LoadResult:
    """rows: (seconds after T0, latency ms, outcome); sent on time."""
    r = LoadResult(rate, duration, 1, T0)
    for at, lat, outcome in rows:
        r.due.append(T0 + at)
        r.sent.append(T0 + at)
        r.latency_ms.append(lat if outcome == "ok" else math.nan)
        r.outcome.append(outcome)  # type: ignore[arg-type]
    return r


def test_percentiles_are_nearest_rank_and_none_when_empty() -> None:
    p = report.percentiles(float(v) for v in range(1, 101))
    assert (p["n"], p["p50"], p["p90"], p["p99"], p["p99.9"], p["max"]) == (100, 50, 90, 99, 100, 100)
    assert report.percentiles([2.0, math.nan, 1.0])["p50"] == 1.0  # failures (NaN) are left out
    empty = report.percentiles([])
    assert empty["n"] == 0 and empty["p99"] is None and empty["max"] is None
    assert report.ratio(None, 1.0) is None and report.ratio(2.0, 0.0) is None
    assert report.ratio(3.0, 1.5) == 2.0


def swap(started: float, switched: float | None, finished: float, ok: bool = True,
         retire: float | None = None, index: int = 1) -> Swap:
    s = Swap(index, "restart", T0 + started, release=7, ok=ok, reason="" if ok else "check failed")
    s.swapped = None if switched is None else T0 + switched
    s.finished = T0 + finished
    s.retire_at = None if retire is None else T0 + retire
    s.steps = {"start": 0.5, "checks": 0.5, "swap": 0.0}
    return s


def test_summary_splits_steady_and_swap_latency_and_counts_failures_by_kind() -> None:
    # 10 req/s for 10 s: 1 ms steady, 10 ms while the swap (started at 4 s, ended at 5 s) runs.
    rows = [(i / 10, 10.0 if 4.0 <= i / 10 <= 5.0 + WINDOW_AFTER else 1.0, "ok") for i in range(100)]
    rows[45] = (4.5, math.nan, "5xx")  # inside the swap's window
    rows[80] = (8.0, math.nan, "connect")  # outside
    rows[2] = (0.2, 500.0, "ok")  # warmup: counted, not in the phases
    s = swap(4.0, 5.0, 5.0, retire=5.0)
    summary = report.summarize(result(rows), [s], planned_swaps=1)

    assert summary["requests"] == 100
    assert summary["failed"] == {"connect": 1, "5xx": 1, "timeout": 0, "other": 0, "total": 2}
    assert summary["failed_outside_swaps"] == 1
    lat = summary["latency_ms"]
    assert lat["steady"]["max"] == 1.0 and lat["swap"]["p99"] == 10.0
    assert lat["swap_cost_p99"] == 10.0
    assert lat["steady"]["n"] + lat["swap"]["n"] == 100 - 2 - 10  # failures and warmup left out
    (row,) = summary["swaps"]["each"]
    assert row["requests"] == 21 and row["failed"]["5xx"] == 1  # due 4.0 .. 6.0 inclusive
    assert (row["started"], row["switched"], row["finished"], row["retired"]) == (4.0, 5.0, 5.0, 5.0)
    assert row["steps"] == {"start": 0.5, "checks": 0.5, "swap": 0.0}
    assert summary["ok"] is False
    assert "**FAIL**: 2 of 100 requests failed (1 connect, 1 5xx)" in report.markdown(summary)


def test_verdict_needs_every_planned_swap_ok_and_no_interrupt() -> None:
    rows = [(i / 10, 1.0, "ok") for i in range(100)]
    good = report.summarize(result(rows), [swap(4, 5, 5)], planned_swaps=1)
    assert good["ok"] is True and "**PASS**: 0 of 100 requests failed; 1 of 1 swaps" in report.markdown(good)
    assert report.summarize(result(rows), [swap(4, None, 5, ok=False)], planned_swaps=1)["ok"] is False
    fewer = report.summarize(result(rows), [swap(4, 5, 5)], planned_swaps=3)
    assert fewer["ok"] is False and "1 of 3 planned swaps ran" in report.markdown(fewer)
    stopped = report.summarize(result(rows), [swap(4, 5, 5)], planned_swaps=1, interrupted=True)
    assert stopped["ok"] is False and "interrupted (Ctrl-C)" in report.markdown(stopped)
    baseline = report.summarize(result(rows), [], planned_swaps=0)
    assert baseline["ok"] is True and baseline["latency_ms"]["swap"]["n"] == 0


def test_a_failed_swap_window_ends_at_its_end_and_has_no_retire() -> None:
    s = swap(2.0, None, 3.0, ok=False)
    assert s.windows() == [(T0 + 2.0, T0 + 3.0 + WINDOW_AFTER)]
    ok = swap(2.0, 3.0, 3.5, retire=13.0)
    assert ok.windows()[1] == (T0 + 12.5, T0 + 14.0) and ok.quiet_from() == T0 + 14.0


def test_generator_that_fell_behind_is_called_out() -> None:
    r = result([(i / 10, 1.0, "ok") for i in range(100)])
    r.sent = [d + 0.2 for d in r.due]  # every request sent 200 ms late
    summary = report.summarize(r, [], planned_swaps=0)
    assert summary["rate"]["kept_up"] is False
    assert "did not keep up" in report.markdown(summary)


def test_write_without_matplotlib_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    r = result([(i / 10, 1.0, "ok") for i in range(50)])
    summary = report.summarize(r, [swap(2, 2.5, 2.5)], planned_swaps=1, meta={"app": "web"})
    text = report.write(summary, r, [swap(2, 2.5, 2.5)], tmp_path)
    assert summary["plot"] is None and report.NO_PLOT in text
    assert {p.name for p in tmp_path.iterdir()} == {"report.md", "summary.json", "samples.csv.gz"}
    import json

    assert json.loads((tmp_path / "summary.json").read_text())["swaps"]["ok"] == 1


# ---- swaps ----------------------------------------------------------------------------------


class FakeClient:
    """Streams canned deploy events; records the paths asked for."""

    def __init__(self, outcomes: list[bool | str]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, Any]] = []

    def stream(self, path: str, body: Any = None) -> Any:
        self.calls.append((path, body))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, str):
            raise ControlError(outcome)
        n = len(self.calls)
        yield {"event": "deploying", "release": n, "image": "img"}
        yield {"event": "step", "step": "start", "status": "done", "seconds": 0.25}
        if outcome:
            yield {"event": "step", "step": "checks", "status": "done", "seconds": 0.5}
            yield {"event": "step", "step": "swap", "status": "done", "targets": []}
            yield {"event": "result", "ok": True, "release": n}
        else:
            yield {"event": "step", "step": "checks", "status": "failed", "seconds": 1.0}
            yield {"event": "failed", "reason": "check health failed"}
            yield {"event": "result", "ok": False, "release": n, "reason": "check health failed"}


def test_perform_reads_the_stream_to_its_result() -> None:
    clock = iter(range(100))
    s = perform(FakeClient([True]), "web", 1, "restart", None, retire_after=2.0,
                now=lambda: float(next(clock)))
    assert s.ok and s.release == 1 and s.steps == {"start": 0.25, "checks": 0.5, "swap": 0.0}
    assert (s.started, s.swapped, s.finished, s.retire_at) == (0.0, 1.0, 2.0, 3.0)
    failed = perform(FakeClient([False]), "web", 1, "deploy", "img:2", retire_after=2.0)
    assert not failed.ok and failed.reason == "check health failed" and failed.swapped is None
    assert failed.retire_at is None and failed.steps["checks"] == 1.0
    refused = perform(FakeClient(["a deploy of 'web' is already running"]), "web", 1, "restart", None, 0)
    assert not refused.ok and "already running" in refused.reason
    long_retire = perform(FakeClient([True]), "web", 1, "restart", None, retire_after=600)
    assert long_retire.retire_at is None  # not waited for, not measured


def test_image_swaps_alternate_and_a_failed_deploy_is_tried_again_not_rolled_back() -> None:
    client = FakeClient([True, True, False, True, True])
    driver = Driver(client, "web", 5, image="web:2")
    driver.due = lambda t0, duration, index: 0.0  # type: ignore[method-assign]
    swaps = driver.run(0.0, 1.0)
    assert [s.kind for s in swaps] == ["deploy", "rollback", "deploy", "deploy", "rollback"]
    assert [p for p, _ in client.calls] == ["/v1/apps/web/deploy", "/v1/apps/web/rollback",
                                            "/v1/apps/web/deploy", "/v1/apps/web/deploy",
                                            "/v1/apps/web/rollback"]
    assert client.calls[0][1] == {"image": "web:2"} and client.calls[1][1] == {}
    assert driver.on_image is False
    restarts = Driver(FakeClient([True]), "web", 1)
    assert restarts.next_kind() == "restart"


def test_swaps_are_spread_over_the_duration_with_steady_time_between() -> None:
    driver = Driver(FakeClient([]), "web", 3)
    assert [driver.due(0.0, 40.0, i) for i in range(3)] == [10.0, 20.0, 30.0]
    driver.swaps.append(swap(-T0 + 10.0, -T0 + 17.0, -T0 + 18.0))  # a slow deploy: ended at 18 s
    assert driver.due(0.0, 40.0, 1) == 20.0
    assert driver.due(0.0, 20.0, 1) == 18.0 + WINDOW_AFTER + 1.0  # not before MIN_STEADY after it
    assert driver.end(0.0, 10.0) == 18.0 + WINDOW_AFTER + 1.0
    assert driver.end(0.0, 60.0) == 60.0


def test_a_set_stop_runs_no_swap() -> None:
    client = FakeClient([True])
    driver = Driver(client, "web", 1)
    driver.stop.set()
    assert driver.run(0.0, 1.0) == [] and client.calls == []


# ---- target ---------------------------------------------------------------------------------


def test_listener_is_local_only() -> None:
    assert target.listener("0.0.0.0:80") == ("127.0.0.1", 80)
    assert target.listener("[::]:8080") == ("127.0.0.1", 8080)
    assert target.listener("localhost:8080") == ("127.0.0.1", 8080)
    assert target.listener("127.0.0.5:81") == ("127.0.0.5", 81)
    assert target.listener("[::1]:81") == ("::1", 81)
    with pytest.raises(LoadTestError, match="not an address of this machine"):
        target.listener("192.0.2.10:80")  # TEST-NET-1: never assigned here


def test_host_header_and_paths_and_headers(tmp_path: Path) -> None:
    config = make_config(tmp_path, {
        "web": {"image": "x:1", "hosts": ["*.example.com", "web.test"], "path_prefix": "/api"},
        "worker": {"image": "x:1", "processes": {"worker": {"command": "sleep 1"}}},
    }, listen="0.0.0.0:8080")
    t = target.resolve(config, "web")
    assert (t.address, t.port, t.host_header, t.paths) == ("127.0.0.1", 8080, "loadtest.example.com", ("/api",))
    assert target.resolve(config, "web", host="a.example.com").host_header == "a.example.com"
    with pytest.raises(LoadTestError, match="does not route"):
        target.resolve(config, "web", host="example.com")
    with pytest.raises(LoadTestError, match="no hosts"):
        target.resolve(config, "worker")
    with pytest.raises(LoadTestError, match="no app 'nope'"):
        target.resolve(config, "nope")
    paths = tmp_path / "paths.txt"
    paths.write_text("# weights by repetition\n/a\n\n/a\n/a\n/b\n")
    t = target.resolve(config, "web", paths=["/c"], paths_file=paths, headers=["X-Test: 1"])
    assert sorted(t.paths) == ["/a", "/a", "/a", "/b", "/c"]
    assert t.headers == (("X-Test", "1"),)
    for bad in ("nope", "/a b", "/a\r\nX: y"):
        with pytest.raises(LoadTestError, match="bad path"):
            target.check_path(bad)
    for bad in ("Host: evil", "Connection: close", "no colon", "Bad Name: v", "X: a\r\nY: b"):
        with pytest.raises(LoadTestError):
            target.parse_header(bad)


def test_rate_above_max_rate_is_refused() -> None:
    args = argparse.Namespace(rate=5000.0, max_rate=2000.0, duration=10.0, timeout=5.0,
                              no_swap=False, image=None, swaps=3)
    with pytest.raises(LoadTestError, match="above --max-rate 2000"):
        check_options(args)
    args.rate = 100.0
    assert check_options(args) == 3
    args.no_swap = True
    assert check_options(args) == 0


# ---- the generator on the wire ----------------------------------------------------------------


async def test_generator_sends_every_path_with_its_weight_and_the_headers() -> None:
    seen: list[tuple[str, str | None, str | None, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("X-Test"), request.headers.get("Host"),
                     request.method))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        tgt = Target(port, "web.test", paths=("/a", "/a", "/b"), headers=(("X-Test", "yes"),))
        run = LoadRun(tgt, 600.0, 0.5, workers=2)  # the same 300 requests in half the time
        import asyncio

        await asyncio.to_thread(run.start)
        res = await asyncio.to_thread(run.join)
    finally:
        await runner.cleanup()
    assert res.errors() == {"connect": 0, "5xx": 0, "timeout": 0, "other": 0}
    assert res.requests == len(seen) == 300
    assert {p for p, _, _, _ in seen} == {"/a", "/b"}
    assert abs(sum(1 for p, *_ in seen if p == "/a") - 200) <= 2
    assert {(x, h, m) for _, x, h, m in seen} == {("yes", "web.test", "GET")}


def test_latency_is_timed_from_the_due_time_or_an_earlier_send() -> None:
    import asyncio
    import time

    from supervisor.cli.loadtest.generator import _Client, _Request

    loop = asyncio.new_event_loop()
    try:
        client = _Client(loop, Target(1), True, 5.0)
        now = time.monotonic()
        late, early = _Request(0, now - 1.0, 0), _Request(1, now - 0.5, 0)
        late.sent, early.sent = now - 0.5, now - 0.6  # 500 ms late; 100 ms early
        for req in (late, early):
            client.due.append(req.due)
            client.sent.append(req.sent)
            client.lat.append(math.nan)
            client.codes.append(0)
            client.pending += 1
            client.finish(req, "ok")
    finally:
        loop.close()
    assert client.lat[0] >= 1000.0  # the generator's lag is in it: no coordinated omission
    assert client.lat[1] >= 600.0  # not from the due time after its own send
