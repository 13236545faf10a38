"""A real image registry for the tests: Debian's `docker-registry` (the distribution registry)
on 127.0.0.1 with htpasswd (bcrypt) auth. Docker allows plain HTTP to 127.0.0.0/8 registries,
so no TLS is needed. Missing binaries fail the tests under CI=true, skip them elsewhere."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

USER, PASSWORD = "deployer", "correct-horse"


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    docker_client: Any
    pushed: list[str]

    def push(self, source: str, name: str) -> str:
        """Tag the local image `source` as HOST/name, push it, then drop the local tag (so a
        deploy has to pull it); the pushed reference."""
        ref = f"{self.host}/{name}"
        repository, tag = ref.rsplit(":", 1)
        self.docker_client.images.get(source).tag(repository, tag)
        self.docker_client.login(USER, PASSWORD, registry=self.host)
        for line in self.docker_client.api.push(repository, tag=tag, stream=True, decode=True):
            if line.get("error"):
                raise AssertionError(f"push {ref}: {line['error']}")
        self.docker_client.images.remove(ref)
        self.pushed.append(ref)
        return ref


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _need(binary: str) -> str:
    found = shutil.which(binary)
    if found:
        return found
    message = f"{binary} not installed (Debian: docker-registry, apache2-utils; scripts/ensure-test-deps.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def start_registry(root: Path, docker_client: Any) -> Iterator[Registry]:
    registry_bin, htpasswd = _need("docker-registry"), _need("htpasswd")
    root.mkdir(parents=True, exist_ok=True)
    hashed = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True)
    (root / "htpasswd").write_text(hashed.stdout)
    port = _free_port()
    (root / "config.yml").write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root / "data"}
http:
  addr: 127.0.0.1:{port}
  secret: dockyard-tests
auth:
  htpasswd:
    realm: dockyard-test
    path: {root / "htpasswd"}
""")
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([registry_bin, "serve", str(root / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for a login
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"docker-registry did not start: {(root / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.05)
        registry = Registry(f"127.0.0.1:{port}", docker_client, [])
        yield registry
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        for ref in registry.pushed if "registry" in locals() else []:
            try:
                docker_client.images.remove(ref)
            except Exception:  # not pulled by the test, or already gone
                pass
