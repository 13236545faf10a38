"""`dockyard loadtest` against a real daemon (`python -m supervisor.cli serve`), the real proxy and
the aiohttp fixture app on real Docker. Short runs at 200 req/s; timings are printed, never
asserted: only outcomes (exit status, failed requests, swaps, what serves afterwards)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SESSION, TEST_LABELS
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    free_port,
    mine,
    wait_serving,
    write_config,
)
from tests.utils import get

pytestmark = pytest.mark.docker
HOST = "web.test"


@pytest.fixture(scope="session")
def loadtest_images(docker_client: Any) -> dict[str, str]:
    """The aiohttp fixture app as v1, and `broken`: v1 whose /health answers 404."""
    from bench.images import build_python_app_image

    v1 = f"dockyard-test-loadtest-{SESSION}:v1"
    build_python_app_image(v1, "v1", labels=TEST_LABELS, client=docker_client)
    broken = f"dockyard-test-loadtest-{SESSION}:broken"
    dockerfile = f"FROM {v1}\nENV NEVER_HEALTHY=1\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=broken, labels=TEST_LABELS, rm=True)
    return {"v1": v1, "broken": broken}


def app_toml(image: str, scale: int = 2, delay: float = 0) -> str:
    return f"""
[apps.web]
image = "{image}"
hosts = ["{HOST}"]
retire_after = 0
stop_timeout = 3
drain_timeout = 2
[apps.web.processes.web]
scale = {scale}
[[apps.web.healthchecks.web]]
path = "/health"
content = "ok"
attempts = 10
wait = 0.2
timeout = 2
initialDelay = {delay}
"""


def loadtest(config: Path, out: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "supervisor.cli", "loadtest", "web", "-c", str(config),
           "--rate", "200", "--out", str(out), "--json", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, dict[str, Any], str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert "Traceback" not in stderr, stderr
    summary = json.loads(stdout) if stdout.strip() else {}
    print(f"\n{stderr}")  # the timings, for the log
    return proc.returncode, summary, stderr


async def test_three_restarts_exit_0_with_a_report_of_three_swaps(
    tmp_path: Path, docker_client: Any, loadtest_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml(loadtest_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        out = tmp_path / "out"
        code, summary, _ = finish(loadtest(config, out, "--duration", "6", "--swaps", "3"))
        assert code == 0, summary
        assert summary["ok"] and summary["failed"]["total"] == 0, (summary["failed"], summary["examples"])
        assert abs(summary["requests"] - 200 * summary["duration"]) <= 2  # the schedule, no more
        each = summary["swaps"]["each"]
        assert [(s["kind"], s["ok"]) for s in each] == [("restart", True)] * 3
        assert all(s["switched"] is not None and "checks" in s["steps"] for s in each)
        assert summary["listener"] == f"127.0.0.1:{port}" and summary["host"] == HOST
        text = (out / "report.md").read_text()
        assert "**PASS**" in text and sum(1 for line in text.splitlines() if "| restart |" in line) == 3
        assert json.loads((out / "summary.json").read_text())["swaps"]["ok"] == 3
        releases = daemon.client().get("/v1/apps/web/releases")
        assert [r["kind"] for r in releases[:3]] == ["restart"] * 3
        daemon.signal(signal.SIGTERM)


async def test_an_image_failing_its_checks_is_reported_and_exits_1_with_the_old_release_serving(
    tmp_path: Path, docker_client: Any, loadtest_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml(loadtest_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        before = {r["app"]: r["release"] for r in daemon.client().get("/v1/routes")}["web"]
        out = tmp_path / "out"
        code, summary, stderr = finish(loadtest(config, out, "--duration", "4", "--swaps", "1",
                                                "--image", loadtest_images["broken"]))
        assert code == 1
        (swap,) = summary["swaps"]["each"]
        assert swap["kind"] == "deploy" and not swap["ok"] and swap["reason"], swap
        assert summary["failed"]["total"] == 0, summary["examples"]  # the old release served all
        assert "FAILED" in (out / "report.md").read_text() and "FAILED" in stderr
        routes = {r["app"]: r for r in daemon.client().get("/v1/routes")}
        assert routes["web"]["release"] == before and len(routes["web"]["targets"]) == 2
        status, body = await get(f"http://127.0.0.1:{port}/", HOST)
        assert status == 200 and body.startswith("v1 ")
        daemon.signal(signal.SIGTERM)


async def test_a_killed_container_gives_failed_requests_by_kind_and_exit_1(
    tmp_path: Path, docker_client: Any, loadtest_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml(loadtest_images["v1"], scale=1))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 1)
        (victim,) = docker_client.containers.list(filters=mine(config))
        proc = loadtest(config, tmp_path / "out", "--no-swap", "--duration", "8")
        time.sleep(3)  # the workers start, then about 2 s of load
        victim.kill()
        code, summary, _ = finish(proc)
        assert code == 1
        failed = summary["failed"]
        assert failed["total"] > 0
        assert failed["total"] == sum(failed[k] for k in ("connect", "5xx", "timeout", "other"))
        assert summary["examples"] and summary["failed_outside_swaps"] == failed["total"]
        assert summary["swaps"] == {"planned": 0, "ok": 0, "each": []}
        text = (tmp_path / "out" / "report.md").read_text()
        assert "**FAIL**" in text and "Failed request examples" in text
        daemon.signal(signal.SIGTERM)


async def test_ctrl_c_mid_swap_leaves_exactly_one_serving_release(
    tmp_path: Path, docker_client: Any, loadtest_images: dict[str, str]
) -> None:
    port = free_port()
    # The new containers' checks wait 2 s before their first attempt: Ctrl-C lands mid-swap.
    config = write_config(tmp_path, port, app_toml(loadtest_images["v1"], delay=2))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        await wait_serving(daemon.client(), "web", 2)
        proc = loadtest(config, tmp_path / "out", "--duration", "20", "--swaps", "3",
                        start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the restart's containers (release 2) are starting
            # The low-level list: containers.list() inspects each one and races their removal.
            rows = docker_client.api.containers(all=True, filters=mine(config))
            names = {n for row in rows for n in row.get("Names") or []}
            if any(n.endswith(".r2") for n in names):
                break
            time.sleep(0.05)
        else:
            proc.kill()
            raise AssertionError("the first swap never started")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        code, summary, stderr = finish(proc)
        assert code == 130
        assert summary["interrupted"] and "Ctrl-C" in stderr
        (swap,) = summary["swaps"]["each"]  # the one in flight, read to its end; no new one
        assert swap["interrupted"] and swap["ok"] and swap["release"] == 2, swap
        client = daemon.client()
        releases = client.get("/v1/apps/web/releases")
        assert [r["status"] for r in releases] == ["active", "superseded"]
        serving = {r["release"] for r in client.get("/v1/ps") if r["serving"]}
        assert serving == {2}
        assert {r["app"]: r["release"] for r in client.get("/v1/routes")} == {"web": 2}
        status, _ = await get(f"http://127.0.0.1:{port}/", HOST)
        assert status == 200
        daemon.signal(signal.SIGTERM)
