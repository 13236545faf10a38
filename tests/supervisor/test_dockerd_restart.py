"""Issue #18 item 14: dockerd really restarted under load (stop it, start it).

Marked `dockerd_restart` and opted into by DOCKYARD_TEST_DOCKERD_RESTART=1: excluded from the
main pytest run and run alone at the END of `make test` (`make test-dockerd-restart`), because restarting the shared engine breaks every other test using it at the
same moment. Containers dockyard creates have Docker's restart policy "no" (dockyard applies
the app's policy itself), so they die with the engine; dockyard keeps the routes meanwhile,
says `docker: unreachable` in status, and when the engine is back restarts the containers
(the engine may reuse their host ports), puts them back in the routes, and serves again. Failed requests are reported:
while the engine is down the containers are down too, so requests fail until they are back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.supervisor.test_faults_docker import wait_docker
from tests.supervisor.test_lifecycle_docker import (
    Daemon,
    app_toml,
    free_port,
    mine,
    wait_serving,
    write_config,
)
from tests.utils import Load, get

pytestmark = [
    pytest.mark.docker,
    pytest.mark.dockerd_restart,
    # Also behind an explicit opt-in: `pytest -m docker` alone must never restart the engine.
    pytest.mark.skipif(os.environ.get("DOCKYARD_TEST_DOCKERD_RESTART") != "1",
                       reason="restarts the shared dockerd: `make test-dockerd-restart` runs it"),
]


def dockerd_pid() -> int:
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    if not out:
        pytest.skip("no dockerd process to restart")
    return int(out[0])


def restart_dockerd() -> float:
    """Stop dockerd (SIGTERM, as `systemctl stop docker`), start it again (as
    scripts/ensure-docker.sh does, in a session of its own so that it outlives this test);
    seconds it was down."""
    pid = dockerd_pid()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "dockerd did not stop within 90 s"
    with open("/tmp/dockyard-dockerd.log", "ab") as log:
        subprocess.Popen([a.decode() for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "dockerd did not answer within 120 s of its start"
        time.sleep(0.5)
    return time.monotonic() - stopped_at


async def restarted_targets(client: Any, timeout: float) -> list[str]:
    """The app's 2 targets once both its web containers were started again by dockyard (the
    engine may hand the same host ports out again after its restart, so ports prove nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routes = {r["app"]: r for r in await asyncio.to_thread(client.get, "/v1/routes")}
        ps = [c for c in await asyncio.to_thread(client.get, "/v1/ps")
              if c.get("app") == "web" and c.get("serving")]
        targets = list(routes["web"]["targets"])
        if len(targets) == 2 and len(ps) == 2 and all(int(c.get("restarts") or 0) >= 1 for c in ps):
            return targets
        await asyncio.sleep(0.2)
    raise AssertionError("web's 2 containers were never restarted and routed again")


async def test_dockerd_restarted_under_load_dockyard_restarts_its_containers(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, app_toml("web", app_images["v1"]))
    with Daemon(config, docker_client) as daemon:
        daemon.start()
        client = daemon.client()
        before = await wait_serving(client, "web", 2)
        base = f"http://127.0.0.1:{port}/"
        async with Load(base, "web.test", rate=50) as load:
            await asyncio.sleep(0.5)
            down_for = await asyncio.to_thread(restart_dockerd)
            await wait_docker(client, True, timeout=120)
            after = await restarted_targets(client, timeout=120)
            back_at = time.monotonic()
            await asyncio.sleep(1)
        served_after = [r for r in load.results if r[0] > back_at]
        print(f"\ndockerd down {down_for:.1f}s; requests {len(load.results) + len(load.errors)},"
              f" failed {len(load.failures)}")
        status = client.get("/v1/status")["docker"]
        assert status["reachable"] and status["outages"] >= 1
        assert len(after) == 2 and before  # both back in the routes, restarted by dockyard
        assert served_after and all(code == 200 for _, _, code, _ in served_after)
        code, body = await get(base, "web.test")
        assert code == 200 and body.startswith("v1 ")
        running = docker_client.containers.list(filters=mine(config))
        assert len(running) == 2
        daemon.signal(signal.SIGTERM)
