"""Operations: Prometheus metrics, `dockyard logs`, `dockyard status`, `dockyard install`,
the systemd unit and the .pyz build. The Docker-marked tests run real containers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from docker.errors import NotFound
from prometheus_client.parser import text_string_to_metric_families

from proxy import Proxy
from supervisor.api import metrics as metrics_api
from supervisor.cli import install as installcli
from supervisor.cli import ops as opscli
from supervisor.cli import status as statuscli
from supervisor.model.errors import ConfigError, ControlError, DockyardError
from supervisor.ops import metrics
from supervisor.runtime import applogs
from supervisor.runtime.containers import container_name
from tests.proxy.utils import TEARDOWN_GRACE
from tests.utils import make_config

REPO = Path(__file__).resolve().parents[2]


# helpers ----------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels); parsing proves the format."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_now(**kwargs: Any) -> dict[Any, float]:
    return samples(metrics.render(**kwargs).decode())


@contextlib.asynccontextmanager
async def backend() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A real aiohttp upstream: / answers 200, /missing 404, /slow waits for the event."""
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="slow")

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}", release
    finally:
        release.set()
        await runner.cleanup()


# metrics ----------------------------------------------------------------------------------


async def test_metrics_counters_move_after_requests_through_a_real_proxy() -> None:
    proxy = Proxy()
    await proxy.start("127.0.0.1", 0)
    runner = await metrics_api.start_http("127.0.0.1:0", lambda: None, lambda: proxy)
    url = f"http://127.0.0.1:{metrics_api.bound_port(runner)}/metrics"
    try:
        async with backend() as (target, release), aiohttp.ClientSession() as session:
            proxy.set_app("shop", ["shop.test"], [target])
            base = f"http://127.0.0.1:{proxy.port}"
            headers = {"Host": "shop.test"}
            for _ in range(3):
                async with session.get(base + "/", headers=headers) as resp:
                    assert resp.status == 200
            async with session.get(base + "/missing", headers=headers) as resp:
                assert resp.status == 404
            slow = asyncio.ensure_future(session.get(base + "/slow", headers=headers))
            for _ in range(200):
                if proxy.stats("shop")["inflight"]:
                    break
                await asyncio.sleep(0.005)

            async with session.get(url) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                during = samples(await resp.text())
            release.set()
            (await slow).release()
            async with session.get(url) as resp:
                after = samples(await resp.text())
    finally:
        await runner.cleanup()
        await proxy.stop(TEARDOWN_GRACE)

    assert value(during, "dockyard_http_requests_total", app="shop", code="2xx") == 3
    assert value(during, "dockyard_http_requests_total", app="shop", code="4xx") == 1
    assert value(during, "dockyard_http_requests_in_flight", app="shop") == 1
    assert value(after, "dockyard_http_requests_in_flight", app="shop") == 0
    assert value(after, "dockyard_http_requests_total", app="shop", code="2xx") == 4
    count = value(after, "dockyard_http_request_duration_seconds_count", app="shop")
    assert count == 5
    assert value(after, "dockyard_http_request_duration_seconds_bucket", app="shop", le="+Inf") == 5
    assert value(after, "dockyard_http_request_duration_seconds_sum", app="shop") > 0
    buckets = [v for (name, labels), v in after.items()
               if name == "dockyard_http_request_duration_seconds_bucket"]
    assert buckets == sorted(buckets), "bucket counts must be cumulative"


def test_metrics_hooks_move_event_counters() -> None:
    app = f"hooks-{uuid.uuid4().hex[:6]}"
    before = scrape_now()
    metrics.deploy_finished(app, True, 2.0)
    metrics.deploy_finished(app, False, 0.5)
    metrics.deploy_finished(app, True, 1.0, kind="rollback")
    metrics.check_failed(app, "web check", process="web")
    metrics.container_restarted(app, "worker")
    metrics.container_restarted(app, "worker")
    metrics.cron_run(app, "cleanup", "succeeded", 0.3)
    metrics.cron_run(app, "cleanup", "failed")
    after = scrape_now()
    assert before != after
    assert value(after, "dockyard_deploys_total", app=app, kind="deploy", result="ok") == 1
    assert value(after, "dockyard_deploys_total", app=app, kind="deploy", result="failed") == 1
    assert value(after, "dockyard_deploys_total", app=app, kind="rollback", result="ok") == 1
    assert value(after, "dockyard_deploy_duration_seconds_count", app=app, result="ok") == 2
    assert value(after, "dockyard_deploy_duration_seconds_sum", app=app, result="ok") == 3.0
    assert value(after, "dockyard_check_failures_total", app=app, process="web", type="startup",
                 check="web check") == 1
    assert value(after, "dockyard_container_restarts_total", app=app, process="worker") == 2
    assert value(after, "dockyard_cron_runs_total", app=app, task="cleanup", status="succeeded") == 1
    assert value(after, "dockyard_cron_runs_total", app=app, task="cleanup", status="failed") == 1
    assert value(after, "dockyard_cron_run_duration_seconds_count", app=app, task="cleanup") == 1


async def test_metrics_on_the_control_socket_with_the_supervisor_view(tmp_path: Path) -> None:
    web_c = SimpleNamespace(process="web")
    sup = SimpleNamespace(
        serving={"hello": SimpleNamespace(release=4, containers=(web_c, web_c, SimpleNamespace(process="worker")))},
        routes=SimpleNamespace(stats_all=lambda: {"hello": {
            "requests": 2, "status": {"2xx": 1, "5xx": 1}, "inflight": 0,
            "latency_buckets": {"0.1": 2, "+Inf": 0}, "latency_sum": 0.05}}),
    )
    app = web.Application()
    metrics_api.add_routes(app, lambda: sup)  # type: ignore[arg-type,return-value]
    runner = web.AppRunner(app)
    await runner.setup()
    sock = tmp_path / "control.sock"
    await web.UnixSite(runner, str(sock)).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as session:
            async with session.get("http://localhost/metrics") as resp:
                assert resp.status == 200
                scrape = samples(await resp.text())
    finally:
        await runner.cleanup()
    assert value(scrape, "dockyard_app_release", app="hello") == 4
    assert value(scrape, "dockyard_app_containers", app="hello", process="web") == 2
    assert value(scrape, "dockyard_app_containers", app="hello", process="worker") == 1
    assert value(scrape, "dockyard_http_requests_total", app="hello", code="5xx") == 1
    assert value(scrape, "dockyard_start_time_seconds") > 0


def test_metrics_listen_is_parsed_and_checked(tmp_path: Path) -> None:
    assert make_config(tmp_path, {}).server.metrics_listen is None
    assert make_config(tmp_path, {}, metrics_listen="127.0.0.1:9100").server.metrics_listen == "127.0.0.1:9100"
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, {}, metrics_listen="9100")
    assert "server.metrics_listen" in str(err.value.problems[0])


# logs: pure parts -------------------------------------------------------------------------


def test_log_sources_are_the_serving_containers_of_the_daemon_view() -> None:
    rows = [
        {"name": "hello.web.2.r4", "id": "b", "process": "web", "serving": True},
        {"name": "hello.web.1.r4", "id": "a", "process": "web", "serving": True},
        {"name": "hello.worker.1.r4", "id": "c", "process": "worker", "serving": True},
        {"name": "hello.web.1.r3", "id": "d", "process": "web", "serving": False},  # retiring
    ]
    assert [s.name for s in applogs.sources_from_ps(rows)] == [
        "hello.web.1.r4", "hello.web.2.r4", "hello.worker.1.r4"]
    assert [s.id for s in applogs.sources_from_ps(rows, "worker")] == ["c"]


def test_log_lines_are_reassembled_from_frames_and_ordered_by_time() -> None:
    lines = applogs._Lines("a")
    got = lines.feed(b"2026-01-01T00:00:01.5Z hel") + lines.feed(b"lo\n2026-01-01T00:00:02Z x\r\ny")
    got += lines.flush()
    assert [(line.stamp, line.text) for line in got] == [
        (("2026-01-01T00:00:01", 500_000_000), "hello"),
        (("2026-01-01T00:00:02", 0), "x"),
        (("", 0), "y"),
    ]
    # Docker trims trailing zeros of the fraction: .5 comes after .123456789
    assert applogs.parse_stamp("2026-01-01T00:00:01.5Z") > applogs.parse_stamp("2026-01-01T00:00:01.123456789Z")
    assert applogs.format_line(got[0], 4) == "a    | hello"
    assert applogs.format_line(got[0], 4, prefix=False) == "hello"


class FakeStream:
    def __init__(self, chunks: list[bytes], on_close: Any) -> None:
        self.chunks = list(chunks)
        self.on_close = on_close
        self.done = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        self.done.wait(5)  # a live container: nothing more until closed

    def close(self) -> None:
        self.on_close()
        self.done.set()


def fake_docker(logs: dict[str, list[bytes]]) -> Any:
    """Answers `docker.api.logs` as the SDK does: bytes, or a stream of frames with stream=True."""
    closed: list[str] = []

    def api_logs(cid: str, **kw: Any) -> Any:
        if cid not in logs:
            raise NotFound(f"no such container {cid}")
        if not kw.get("stream"):
            return b"".join(logs[cid])
        return FakeStream(logs[cid], lambda: closed.append(cid))

    return SimpleNamespace(api=SimpleNamespace(logs=api_logs), closed=closed)


def test_read_merges_containers_in_time_order_and_skips_vanished_ones() -> None:
    docker = fake_docker({
        "a": [b"2026-01-01T00:00:01Z a1\n2026-01-01T00:00:03Z a2\n"],
        "b": [b"2026-01-01T00:00:02Z b1\n"],
    })
    sources = [applogs.LogSource("x.web.1.r1", "a", "web"), applogs.LogSource("x.web.2.r1", "b", "web"),
               applogs.LogSource("x.web.3.r1", "gone", "web")]
    assert [line.text for line in applogs.read(docker, sources)] == ["a1", "b1", "a2"]


def test_follow_stops_and_closes_the_docker_streams() -> None:
    docker = fake_docker({"a": [b"2026-01-01T00:00:01Z one\n"], "b": [b"2026-01-01T00:00:02Z two\n"]})
    sources = [applogs.LogSource("a", "a", "web"), applogs.LogSource("b", "b", "web")]
    stream = applogs.follow(docker, sources)
    got = {next(stream).text, next(stream).text}
    stream.close()
    assert got == {"one", "two"}
    assert sorted(docker.closed) == ["a", "b"]


class FakeClient:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def get(self, path: str) -> Any:
        self.asked.append(path)
        answer = self.answers.get(path)
        if answer is None:
            raise ControlError(f"404 {path}")
        return answer


def test_logs_command_prints_prefixed_lines_and_refuses_an_app_without_containers() -> None:
    rows = [{"name": "h.web.1.r2", "id": "a", "process": "web", "serving": True},
            {"name": "h.worker.1.r2", "id": "b", "process": "worker", "serving": True}]
    client = FakeClient({"/v1/ps?app=h": rows})
    docker = fake_docker({"a": [b"2026-01-01T00:00:01Z GET /\n"], "b": [b"2026-01-01T00:00:02Z tick 1\n"]})
    out = io.StringIO()
    assert opscli.logs(client, docker, "h", out=out) == 0
    assert out.getvalue() == "h.web.1.r2    | GET /\nh.worker.1.r2 | tick 1\n"
    with pytest.raises(applogs.LogsError, match="no serving containers of process type 'clock'"):
        opscli.logs(client, docker, "h", process="clock")


def test_cli_arguments() -> None:
    common = argparse.ArgumentParser(add_help=False)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    opscli.add_commands(sub, common, lambda args: None)
    args = parser.parse_args(["logs", "hello", "-f", "-p", "worker", "-n", "5"])
    assert (args.app, args.follow, args.process, args.num, args.quiet) == ("hello", True, "worker", 5, False)
    assert parser.parse_args(["logs", "hello", "-n", "all"]).num is None
    assert parser.parse_args(["logs", "hello"]).num == applogs.DEFAULT_TAIL
    with pytest.raises(SystemExit):
        parser.parse_args(["logs", "hello", "-n", "-3"])
    args = parser.parse_args(["install", "--prefix", "/tmp/x"])
    assert (args.prefix, args.enable, args.no_binary) == ("/tmp/x", False, False)


# status -----------------------------------------------------------------------------------


STATUS = {"version": "0.1.0", "pid": 42, "uptime": 3725.2, "config": "/etc/dockyard/dockyard.toml",
          "apps": [{"app": "hello", "hosts": ["hello.test"], "path_prefix": "/", "release": 3,
                    "targets": ["127.0.0.1:1"]},
                   {"app": "new", "hosts": [], "path_prefix": "/", "release": None, "targets": []}]}
PS = [
    {"app": "hello", "process": "web", "name": "hello.web.1.r3", "release": 3, "status": "running",
     "serving": True, "inflight": 2, "restarts": 1, "exit_code": None},
    {"app": "hello", "process": "web", "name": "hello.web.2.r3", "release": 3, "status": "exited",
     "serving": True, "inflight": 0, "restarts": 0, "exit_code": 137},
    {"app": "hello", "process": "web", "name": "hello.web.1.r2", "release": 2, "status": "running",
     "serving": False, "inflight": 1, "restarts": 0, "exit_code": None},
]
CRON = [{"app": "hello", "id": "cleanup", "schedule": "*/5 * * * *",
         "next_run": "2026-01-01T00:05:00+00:00", "suspended": False, "running": 0,
         "last": {"status": "succeeded"}}]


def test_status_report_without_and_with_a_scheduler() -> None:
    report = statuscli.status_report(FakeClient({"/v1/status": STATUS, "/v1/ps": PS}))
    hello, new = report["apps"]
    assert (report["version"], report["uptime"]) == ("0.1.0", 3725.2)
    assert hello["inflight"] == 3  # the retiring container's request counts too
    assert hello["health"] == "degraded (1/2 running)"
    assert hello["restarts"] == 1
    assert "cron" not in hello
    assert new["health"] == "not deployed"
    text = statuscli.render_status(report)
    assert "up 1h2m" in text and "hello  release 3  hello.test  in-flight 3" in text

    report = statuscli.status_report(FakeClient({"/v1/status": STATUS, "/v1/ps": PS, "/v1/cron": CRON}))
    assert report["apps"][0]["cron"] == [{"id": "cleanup", "schedule": "*/5 * * * *",
                                          "next_run": "2026-01-01T00:05:00+00:00",
                                          "suspended": False, "running": 0, "last": "succeeded"}]
    assert report["apps"][1]["cron"] == []
    assert "cron cleanup  */5 * * * *  next 2026-01-01T00:05:00+00:00  last succeeded" in \
        statuscli.render_status(report)


def test_status_shows_the_proxys_client_connections_and_their_limit() -> None:
    status = {**STATUS, "connections": {"open": 12, "limit": 16384}}
    report = statuscli.status_report(FakeClient({"/v1/status": status, "/v1/ps": PS}))
    assert report["connections"] == {"open": 12, "limit": 16384}
    assert "\nconnections 12 of 16384\n" in statuscli.render_status(report)


# install, systemd unit, .pyz ---------------------------------------------------------------


def test_install_into_a_prefix_is_idempotent_and_keeps_an_edited_config(tmp_path: Path) -> None:
    report = installcli.install(tmp_path, binary=False)
    unit = tmp_path / "etc/systemd/system/dockyard.service"
    config = tmp_path / "etc/dockyard/dockyard.toml"
    state = tmp_path / "var/lib/dockyard"
    assert unit.read_bytes() == (REPO / "configs/dockyard.service").read_bytes()
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o700
    assert 'state_dir = "/var/lib/dockyard"' in config.read_text()
    assert len(report.done) == 3
    from supervisor.config.loader import load_config

    assert load_config(config).server.control_socket == Path("/var/lib/dockyard/control.sock")

    config.write_text("# mine\n")
    again = installcli.install(tmp_path, binary=False)
    assert again.done[0].startswith("unchanged") and again.done[1].startswith("kept")
    assert config.read_text() == "# mine\n"
    with pytest.raises(DockyardError, match="--enable"):
        installcli.install(tmp_path, enable=True, binary=False, run=lambda argv: None)


def test_unit_file_keeps_containers_across_restarts() -> None:
    text = (REPO / "configs/dockyard.service").read_text()
    for line in ("Restart=always", "KillMode=process",
                 "ExecStart=/usr/local/bin/dockyard serve -c /etc/dockyard/dockyard.toml",
                 "ExecReload=/bin/kill -HUP $MAINPID", "WantedBy=multi-user.target"):
        assert line in text.splitlines()


def _systemd_analyze_verify(tmp_path: Path, unit: str) -> None:
    """`systemd-analyze verify` on configs/<unit> beside the service unit, whose ExecStart points
    at a stand-in dockyard (verify insists that ExecStart's binary exists)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    fake = tmp_path / "bin" / "dockyard"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    (tmp_path / "dockyard.service").write_text(
        (REPO / "configs/dockyard.service").read_text().replace("/usr/local/bin/dockyard", str(fake))
    )
    if unit != "dockyard.service":
        (tmp_path / unit).write_text((REPO / "configs" / unit).read_text())
    result = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True,
                            text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert unit not in result.stderr, result.stderr


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    _systemd_analyze_verify(tmp_path, "dockyard.service")


def test_pyz_build_runs_validate(tmp_path: Path) -> None:
    from supervisor.cli import pyz

    archive = pyz.build(tmp_path / "dist" / "dockyard.pyz")
    assert archive.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    # run it from elsewhere, so that only the archive can provide dockyard's packages
    result = subprocess.run(
        [sys.executable, str(archive), "validate", "-c", str(REPO / "configs/demo.toml")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "OK, 1 app" in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import supervisor.cli.install as o;"
         "print(o.__file__); print(o.resource('dockyard.service')[:10].decode())", str(archive)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines()[0].startswith(str(archive))
    assert probe.stdout.splitlines()[1] == "# dockyard"


def test_pyz_carries_bytecode_its_python_loads_and_another_ignores(tmp_path: Path) -> None:
    """zipimport reads `x.pyc` beside `x.py` and writes no cache: without the bytecode every run
    of the archive compiles dockyard's modules from source."""
    import zipfile

    from supervisor.cli import pyz

    archive = pyz.build(tmp_path / "dockyard.pyz")
    names = set(zipfile.ZipFile(archive).namelist())
    sources = {n for n in names if n.endswith(".py")}
    assert "supervisor/cli/main.py" in sources
    assert {n for n in sources if n + "c" not in names} == set()
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import supervisor.cli.main as m;"
         "import proxy.compiled as c, proxy.exchange; print(m.__file__); print(c.is_compiled());"
         "print(len(c.code_fingerprint()), c.modules())", str(archive)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr
    # the bytecode was used, and it is not mistaken for the compiled (mypyc) proxy
    # ... and the workers' fingerprint (adoption across versions) is the archive file's
    assert loaded.stdout.splitlines() == [f"{archive}/supervisor/cli/main.pyc", "False", "16 []"]
    # bytecode of another Python version (another magic number): zipimport compiles the source
    stale = tmp_path / "stale.pyz"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(stale, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"\0\0\r\n" + data[4:] if info.filename.endswith(".pyc") else data)
    result = subprocess.run([sys.executable, str(stale), "validate", "-c", str(REPO / "configs/demo.toml")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0 and "OK, 1 app" in result.stdout, result.stderr


# Docker: logs -f, and metrics after a real deploy ---------------------------------------------


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def control_socket(sup: Any, path: Path) -> AsyncIterator[Any]:
    from supervisor.api.control import make_app
    from supervisor.cli.client import ControlClient

    app = make_app(sup)
    metrics_api.add_routes(app, lambda: sup)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    try:
        yield ControlClient(path)
    finally:
        await runner.cleanup()


@pytest.mark.docker
async def test_logs_follow_prints_new_lines(tmp_path: Path, docker_client: Any,
                                           app_images: dict[str, str]) -> None:
    from tests.utils import stack

    name = _unique("logs")
    app = {"image": app_images["v1"], "default_checks_wait": 0.2, "stop_timeout": 1,
           "env": {"TICK": "0.2"},
           "processes": {"worker": {"command": ["/bin/app-worker"], "scale": 1}}}
    config = make_config(tmp_path, {name: app})
    async with stack(config, docker_client) as s:
        report = await s.sup.deploy(name)
        assert report.ok, report.reason
        async with control_socket(s.sup, tmp_path / "c.sock") as client:
            await asyncio.sleep(0.5)  # a few ticks written already
            out = io.StringIO()
            assert await asyncio.to_thread(opscli.logs, client, docker_client, name, tail=2, out=out) == 0
            assert len(out.getvalue().splitlines()) == 2

            stop = threading.Event()
            seen: list[str] = []

            class Writer(io.StringIO):
                def write(self, text: str) -> int:
                    seen.append(text)
                    if len(seen) >= 5:
                        stop.set()
                    return len(text)

            started = time.monotonic()
            code = await asyncio.to_thread(opscli.logs, client, docker_client, name, process="worker",
                                           tail=1, follow=True, out=Writer(), stop=stop)
            took = time.monotonic() - started
    assert code == 0
    prefix = f"{container_name(name, 'worker', 1, 1, config.server.instance)} | tick "
    assert all(line.startswith(prefix) and line.endswith(" v1\n") for line in seen), seen
    ticks = [int(line[len(prefix):].split()[0]) for line in seen]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks  # one backlog line, then live ones
    assert took >= 0.2 * 3, "the later lines must have been written while following"


@pytest.mark.docker
async def test_metrics_move_after_a_deploy_and_requests(tmp_path: Path, docker_client: Any,
                                                        app_images: dict[str, str]) -> None:
    from tests.utils import get, stack

    name = _unique("metrics")
    host = f"{name}.test"
    app = {"image": app_images["v1"], "hosts": [host], "retire_after": 0, "stop_timeout": 1,
           "healthchecks": {"web": [{"type": "startup", "name": "health", "path": "/health",
                                     "content": "ok", "attempts": 5, "timeout": 2, "wait": 0.2}]}}
    config = make_config(tmp_path, {name: app})
    async with stack(config, docker_client) as s:
        before = samples(metrics.render(s.sup, s.proxy).decode())
        report = await s.sup.deploy(name)
        assert report.ok, report.reason
        for _ in range(3):
            assert (await get(s.base + "/", host))[0] == 200
        await s.figures()  # the workers' counters, collected now
        async with control_socket(s.sup, tmp_path / "c.sock") as client:

            def scrape() -> str:
                resp = client._request("GET", "/metrics")
                assert resp.status == 200
                return str(resp.read().decode())

            after = samples(await asyncio.to_thread(scrape))
    assert value(after, "dockyard_app_release", app=name) == 1
    assert value(after, "dockyard_app_containers", app=name, process="web") == 1
    assert value(after, "dockyard_http_requests_total", app=name, code="2xx") == 3
    assert value(after, "dockyard_http_request_duration_seconds_count", app=name) == 3
    deploys = ("dockyard_deploys_total", {"app": name, "kind": "deploy", "result": "ok"})
    assert value(after, deploys[0], **deploys[1]) == value(before, deploys[0], **deploys[1]) + 1
    assert value(after, "dockyard_deploy_duration_seconds_count", app=name, result="ok") == 1


# structured logs --------------------------------------------------------------------------


def _record(message: str, *args: Any, name: str = "dockyard.supervisor") -> Any:
    import logging

    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


def test_json_logs_split_paired_messages_into_typed_fields() -> None:
    import orjson

    from supervisor.ops.logs import JsonFormatter, KeyValueFormatter, split_message

    fmt = JsonFormatter()
    deploying = orjson.loads(fmt.format(_record("deploying app=%s release=%d image=%s kind=%s",
                                                "hello", 3, "img:v1", "deploy")))
    deployed = orjson.loads(fmt.format(_record("deployed app=%s release=%d duration=%.3f", "hello", 3, 1.5)))
    assert {k: deploying[k] for k in ("msg", "app", "release", "image")} == {
        "msg": "deploying", "app": "hello", "release": 3, "image": "img:v1"}
    assert {k: deployed[k] for k in ("level", "logger", "msg", "duration")} == {
        "level": "info", "logger": "dockyard.supervisor", "msg": "deployed", "duration": 1.5}
    assert split_message("deploy failed app=x release=2 reason=check 'web' failed: 500") == (
        "deploy failed", {"app": "x", "release": 2, "reason": "check 'web' failed: 500"})
    assert split_message("config warning='a b'") == ("config", {"warning": "a b"})
    assert split_message("no fields here") == ("no fields here", {})
    access = orjson.loads(fmt.format(_record('{"app":"x","status":200}', name="dockyard.proxy.access")))
    assert (access["msg"], access["app"], access["status"]) == ("request", "x", 200)
    line = KeyValueFormatter().format(_record("deployed app=%s release=%d duration=%.3f", "h", 1, 0.5))
    assert " level=info logger=dockyard.supervisor msg=deployed app=h release=1 duration=0.500" in line


def test_socket_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    _systemd_analyze_verify(tmp_path, "dockyard.socket")
