"""The one door to the Docker engine (supervisor/runtime/engine.py)."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.runtime.engine import connect


def test_a_unix_socket_client_does_not_read_proxy_settings_per_call(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that would swallow every call if requests still honoured the environment for it.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    client = connect(timeout=10)
    assert client.api.base_url.startswith("http+docker://")
    assert client.api.trust_env is False
    assert client.api.version()["ApiVersion"] == docker_client.api.version()["ApiVersion"]
