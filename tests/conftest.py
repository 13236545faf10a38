"""Shared fixtures. Docker-backed fixtures FAIL under CI=true when no engine answers,
and skip (with the reason shown by -ra) elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures" / "dokku-app-json"
TEST_LABEL = "dockyard.test"  # every container and image the tests create carries it
SESSION = str(os.getpid())  # its value: the session that made it (sessions may run concurrently)
TEST_LABELS = {TEST_LABEL: SESSION}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _docker_client() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # any failure means "no engine answers"
        message = f"no Docker engine answers ({exc.__class__.__name__}: {exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI=true requires one (run scripts/ensure-docker.sh)")
        pytest.skip(f"{message}; run `make docker` to start one")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = _docker_client()
    yield client
    _cleanup(client)


def _cleanup(client: Any) -> None:
    """Remove every container and image labelled by the tests, even after failures."""
    mine = {"label": f"{TEST_LABEL}={SESSION}"}
    for container in client.containers.list(all=True, filters=mine):
        try:
            container.remove(force=True)
        except Exception:
            pass
    for image in client.images.list(filters=mine):
        try:
            client.images.remove(image.id, force=True)
        except Exception:
            pass


@pytest.fixture(scope="session")
def app_images(docker_client: Any) -> dict[str, str]:
    """The fixture app built as two versions: {'v1': tag, 'v2': tag}."""
    from bench.images import build_app_image

    tags = {}
    for version in ("v1", "v2", "v3"):
        # A tag per test session: concurrent sessions on one engine never remove each other's.
        tag = f"dockyard-test-app-{os.getpid()}:{version}"
        build_app_image(tag, version, labels=TEST_LABELS, client=docker_client)
        tags[version] = tag
    return tags


@pytest.fixture
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"Dokku fixture corpus not found at {SHARED_FIXTURES} (../shared is absent)")
    return SHARED_FIXTURES
