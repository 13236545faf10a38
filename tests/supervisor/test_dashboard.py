"""The dashboard without Docker: pages, headers, the event stream, redaction, config, the .pyz.

The browser tests against a real daemon are in test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy import Proxy
from supervisor.api.dashboard import Sources, make_app
from supervisor.api.dashboard.site import CSP, STATIC, host_allowed
from supervisor.cli import pyz
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import ConfigError
from supervisor.ops.series import Sampler
from supervisor.runtime.protocol import ContainerInfo
from supervisor.store.releases import StateStore
from tests.utils import make_config

SECRET = "s3cr3t-Value-9f8e7d"


class Runtime:
    """Just enough of the Runtime Protocol for the views: no containers."""

    async def list(self, labels: Any = None) -> list[ContainerInfo]:
        return []


def apps() -> dict[str, Any]:
    return {
        "web": {"image": "web:1", "hosts": ["web.test"], "env": {"API_TOKEN": SECRET, "ON": "1"},
                "cron": [{"id": "report", "command": "echo report", "schedule": "@daily"}]},
        "api": {"image": "api:1", "hosts": ["api.test"], "path_prefix": "/v1"},
    }


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Supervisor, Sampler]]:
    config = make_config(tmp_path, apps())
    state = StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    sup = Supervisor(config, Runtime(), proxy, state)  # type: ignore[arg-type]
    proxy.set_app("web", ["web.test"], ["127.0.0.1:1"])
    sampler = Sampler(proxy, interval=0.05)
    # A release that failed with the secret in its reason (a check's echo of the env, say).
    first = state.begin_release("web", "web:1", {"env": {"API_TOKEN": SECRET}}, "deploy")
    state.fail("web", first.number, f"check 'health' failed: body was {SECRET!r}",
               [{"step": "start", "seconds": 0.5, "ok": True}, {"step": "checks", "seconds": 2.0, "ok": False}])
    second = state.begin_release("web", "web:2", {"env": {"API_TOKEN": SECRET}}, "deploy")
    state.activate("web", second.number, [{"step": "start", "seconds": 0.4, "ok": True}])
    app = make_app(Sources(sup, sampler, sup.events))
    client = TestClient(TestServer(app))
    await client.start_server()
    sampler.start()
    try:
        yield client, sup, sampler
    finally:
        await sampler.close()
        await client.close()
        state.close()


async def text_of(client: TestClient[Any, Any], path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, (path, response.status)
    return await response.text()


async def test_the_overview_lists_every_app_with_its_numbers(board: Any) -> None:
    client, sup, sampler = board
    page = await text_of(client, "/")
    assert 'href="/apps/web"' in page and 'href="/apps/api"' in page
    assert "web.test" in page and "api.test" in page and "/v1" in page
    assert '<script src="/static/dashboard.js"' in page


async def test_the_app_page_shows_releases_with_steps_and_failure_reasons(board: Any) -> None:
    client, sup, sampler = board
    page = await text_of(client, "/apps/web")
    assert "r2" in page and "web:2" in page and "status-active" in page
    assert "status-failed" in page and "check &#x27;health&#x27; failed" in page
    assert "checks 2.0s" in page
    assert "report" in page and "@daily" in page  # the cron task is listed (no scheduler: no runs)
    assert await text_of(client, "/apps/nope", 404)


async def test_env_values_never_appear_on_any_page(board: Any) -> None:
    client, sup, sampler = board
    sup.events.publish({"event": "failed", "app": "web", "release": 3, "reason": f"exit: {SECRET}"})
    for path in ("/", "/apps/web", "/apps/web/parts", "/apps/web/series.json", "/apps/api"):
        text = await text_of(client, path)
        assert SECRET not in text, path
    assert "[redacted]" in await text_of(client, "/apps/web/parts")
    response = await client.get("/apps/web/stream")
    sup.events.publish({"event": "step", "app": "web", "release": 3, "step": "checks",
                        "status": "failed", "error": SECRET})
    streamed = b""
    while b"event: deploy" not in streamed:
        streamed += await asyncio.wait_for(response.content.readany(), 3)
    response.close()
    assert SECRET.encode() not in streamed and b"[redacted]" in streamed


async def test_every_answer_carries_a_strict_csp_and_nothing_but_get_is_served(board: Any) -> None:
    client, sup, sampler = board
    for path in ("/", "/apps/web", "/static/dashboard.js", "/apps/web/series.json", "/nope"):
        response = await client.get(path)
        assert response.headers["Content-Security-Policy"] == CSP, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in CSP and "'unsafe-inline'" not in CSP
    assert (await client.post("/apps/web")).status == 405
    assert (await client.get("/static/../pages.py")).status == 404
    for name, kind in STATIC.items():
        response = await client.get(f"/static/{name}")
        assert response.status == 200 and response.content_type == kind


async def test_pages_load_nothing_from_another_origin(board: Any) -> None:
    client, sup, sampler = board
    for path in ("/", "/apps/web"):
        page = await text_of(client, path)
        assert "http://" not in page and "https://" not in page and "//" not in page.replace("<!doctype", "")
    for name in STATIC:
        body = await text_of(client, f"/static/{name}")
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", "") and "https://" not in body


async def test_a_host_that_is_not_an_address_is_refused(board: Any) -> None:
    client, sup, sampler = board
    assert (await client.get("/", headers={"Host": "evil.example"})).status == 403
    assert (await client.get("/", headers={"Host": "localhost:9200"})).status == 200
    assert host_allowed("[::1]:9200") and host_allowed("127.0.0.1") and host_allowed("10.1.2.3:80")
    assert not host_allowed("dock.example.com") and not host_allowed("127.0.0.1.nip.io:80")


async def test_the_app_stream_sends_points_state_deploy_events_and_markers(board: Any) -> None:
    client, sup, sampler = board
    response = await client.get("/apps/web/stream")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    await asyncio.sleep(0.15)  # a few samples
    sup.events.publish({"event": "deploying", "app": "web", "release": 3, "image": "web:3", "kind": "deploy"})
    sup.events.publish({"event": "step", "app": "web", "release": 3, "step": "swap", "status": "done"})
    sup.events.publish({"event": "deploying", "app": "api", "release": 9, "image": "api:9"})
    frames: dict[str, list[Any]] = {}
    buffer = b""
    while len(frames.get("marker", [])) < 2 or "points" not in frames:
        buffer += await asyncio.wait_for(response.content.readany(), 3)
        *done, buffer = buffer.split(b"\n\n")
        for chunk in done:
            lines = dict(line.split(b": ", 1) for line in chunk.split(b"\n") if b": " in line)
            if b"event" in lines:
                frames.setdefault(lines[b"event"].decode(), []).append(orjson.loads(lines[b"data"]))
    response.close()
    assert [m["kind"] for m in frames["marker"]] == ["start", "swap"]
    assert {e["app"] for e in frames["deploy"]} == {"web"}
    assert frames["points"][0]["t"] and "rate" in frames["points"][0]
    series = orjson.loads(await text_of(client, "/apps/web/series.json"))
    assert [m["label"] for m in series["markers"]] == ["start r3", "swap r3"]


async def test_the_overview_stream_sends_each_apps_numbers(board: Any) -> None:
    client, sup, sampler = board
    response = await client.get("/stream")
    buffer = b""
    while b"event: apps" not in buffer:
        buffer += await asyncio.wait_for(response.content.readany(), 3)
    response.close()
    data = orjson.loads(buffer.split(b"data: ", 1)[1].split(b"\n", 1)[0])
    assert set(data) == {"web", "api"} and {"release", "rate", "p99", "inflight"} <= set(data["web"])


def test_dashboard_listen_is_off_by_default_parsed_and_checked(tmp_path: Path) -> None:
    assert make_config(tmp_path, {}).server.dashboard_listen is None
    config = make_config(tmp_path, {}, dashboard_listen="127.0.0.1:9200")
    assert config.server.dashboard_listen == "127.0.0.1:9200"
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, {}, dashboard_listen="9200")
    assert "server.dashboard_listen" in str(err.value.problems[0])
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, {}, listen="0.0.0.0:9200", dashboard_listen="127.0.0.1:9200")
    assert "a port of its own" in str(err.value.problems[0])
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, {}, dashboard_host="dock.example.com")
    assert "server.dashboard_host" in str(err.value.problems[0])  # not supported (yet): docs/dashboard.md


def test_the_pyz_carries_the_templates_and_assets_and_serves_them(tmp_path: Path) -> None:
    archive = pyz.build(tmp_path / "dockyard.pyz")
    names = set(zipfile.ZipFile(archive).namelist())
    for name in (*STATIC, ):
        assert f"supervisor/api/dashboard/static/{name}" in names
    assert "supervisor/api/dashboard/templates/layout.html" in names
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from supervisor.api.dashboard import pages, site;"
        "assert site.__file__.startswith(sys.argv[1]), site.__file__;"
        "print(len(site.asset('chart.js')), len(pages.template('app.html').template))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(archive)], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert all(int(n) > 100 for n in out.stdout.split())


def test_package_data_lists_the_dashboard_files() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["supervisor.api.dashboard"]
    assert "templates/*.html" in patterns and "static/*" in patterns



async def test_serve_samples_and_listens_and_open_streams_end_when_it_stops(tmp_path: Path) -> None:
    """What the daemon calls: the sampler and the listener together; a stop with streams open
    takes well under the 2 s shutdown timeout."""
    import time

    import aiohttp

    from supervisor.api.dashboard import serve

    config = make_config(tmp_path, apps())
    state = StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    sup = Supervisor(config, Runtime(), proxy, state)  # type: ignore[arg-type]
    board = await serve("127.0.0.1:0", sup, proxy)
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{board.port}"
            async with session.get(base + "/") as response:
                assert response.status == 200
            streams = [await session.get(base + path) for path in ("/stream", "/apps/web/stream")]
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await board.close()
            took = time.monotonic() - started
            for response in streams:
                response.close()
        assert took < 1.9, took
        assert board.sampler._task is None
    finally:
        state.close()


class Scheduler:
    """Just enough of the scheduler for the app page: one task with one run that printed the
    secret (a task that echoes its env, say)."""

    def list(self, app: str | None = None) -> list[dict[str, Any]]:
        return [{"app": "web", "id": "report", "schedule": "@daily", "command": "echo report",
                 "next_run": "2030-01-01T00:00:00+00:00", "suspended": False, "running": 0}]

    def runs(self, app: str, task: str | None = None, limit: int = 20) -> list[Any]:
        from scheduler.runs import RunRecord

        output = "".join(f"line {i}\n" for i in range(30)) + f"token={SECRET}\ndone\n"
        return [RunRecord(id=7, app=app, task="report", scheduled=None, manual=True,
                          status="succeeded", exit_code=0, image="web:2", release=2,
                          container="c", started=1.0e9, ended=1.0e9 + 2, output=output)]


class BrokenDocker(Runtime):
    async def list(self, labels: Any = None) -> list[ContainerInfo]:
        raise ConnectionError("docker is away")


async def test_cron_runs_show_their_output_tail_redacted_and_docker_trouble_is_survived(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, apps())
    state = StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    sup = Supervisor(config, BrokenDocker(), proxy, state)  # type: ignore[arg-type]
    sched = Scheduler()
    app = make_app(Sources(sup, Sampler(proxy), sup.events, lambda: sched))  # type: ignore[arg-type,return-value]
    async with TestClient(TestServer(app)) as client:
        page = await text_of(client, "/apps/web")
        assert "token=[redacted]" in page and SECRET not in page
        assert "line 29" in page and "line 5\n" not in page  # the tail only
        assert "2030-01-01 00:00:00Z" in page
        overview = await text_of(client, "/")
        assert "2030-01-01 00:00:00Z" in overview  # the next cron run
        assert "no containers" in page  # Docker did not answer: the rest still shows
    state.close()


async def test_the_overview_shows_a_manual_certificates_expiry(tmp_path: Path) -> None:
    import trustme

    from tests.tls.utils import write_pair

    cert, key = write_pair(trustme.CA(), tmp_path, "web", "web.test")
    defs = apps()
    defs["web"].update(tls="manual", tls_cert=cert, tls_key=key)
    config = make_config(tmp_path, defs, tls_listen="127.0.0.1:8443")
    state = StateStore(config.server.state_dir)
    proxy = Proxy(config.proxy)
    sup = Supervisor(config, Runtime(), proxy, state)  # type: ignore[arg-type]
    async with TestClient(TestServer(make_app(Sources(sup, Sampler(proxy), sup.events)))) as client:
        page = await text_of(client, "/")
    state.close()
    assert "manual: valid, expires 3000-01-01" in page  # (trustme's certificates last long)
