"""Docker smoke test: build the busybox app, run it published on 127.0.0.1, GET it, remove it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.conftest import TEST_LABELS

pytestmark = pytest.mark.docker


def _get(url: str, deadline: float) -> tuple[int, str]:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered: {last}")


def test_busybox_app_serves_on_loopback(docker_client: Any, app_images: dict[str, str]) -> None:
    container = docker_client.containers.run(
        app_images["v1"],
        detach=True,
        labels=TEST_LABELS,
        ports={"5000/tcp": ("127.0.0.1", None)},
    )
    try:
        container.reload()
        port = int(container.ports["5000/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 10
        status, body = _get(f"http://127.0.0.1:{port}/", deadline)
        assert status == 200
        assert body.split()[0] == "v1"
        assert body.split()[1] == container.id[:12]
        assert _get(f"http://127.0.0.1:{port}/health", deadline) == (200, "ok\n")
        status, body = _get(f"http://127.0.0.1:{port}/cgi-bin/slow?ms=50", deadline)
        assert (status, body) == (200, "slow 50 v1\n")
    finally:
        container.remove(force=True)
    assert not docker_client.containers.list(all=True, filters={"id": container.id})


def test_never_healthy_and_crash_switches(docker_client: Any, app_images: dict[str, str]) -> None:
    container = docker_client.containers.run(
        app_images["v1"],
        detach=True,
        labels=TEST_LABELS,
        environment={"NEVER_HEALTHY": "1", "CRASH_AFTER": "1"},
        ports={"5000/tcp": ("127.0.0.1", None)},
    )
    try:
        container.reload()
        port = int(container.ports["5000/tcp"][0]["HostPort"])
        _get(f"http://127.0.0.1:{port}/", time.monotonic() + 10)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        assert err.value.code == 404
        result = container.wait(timeout=15)
        assert result["StatusCode"] == 3
    finally:
        container.remove(force=True)


def test_worker_variant_logs(docker_client: Any, app_images: dict[str, str]) -> None:
    container = docker_client.containers.run(
        app_images["v2"], ["/bin/app-worker"], detach=True, labels=TEST_LABELS,
        environment={"TICK": "0.2"},
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"tick 2 v2" not in container.logs():
            time.sleep(0.1)
        assert b"tick 2 v2" in container.logs()
        container.stop(timeout=5)
        assert container.wait(timeout=10)["StatusCode"] == 0
    finally:
        container.remove(force=True)
