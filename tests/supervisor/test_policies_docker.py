"""Edge policies end to end (issue #21): the TOML's defaults reach the proxy through the fleet.

A one-worker app (the aiohttp fixture app with ONE_WORKER=1: one request at a time, body
included, as gunicorn -w 1) on real Docker: a client sending its body one byte a second holds
the worker without request buffering, and does not with it (the default)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_LABELS
from tests.utils import make_config, stack

pytestmark = pytest.mark.docker
HOST = "one.test"


@pytest.fixture(scope="module")
def image(docker_client: Any) -> str:
    from bench.images import build_python_app_image

    tag = f"dockyard-test-pyapp-{TEST_LABELS['dockyard.test']}:one"
    build_python_app_image(tag, "one", labels=TEST_LABELS, client=docker_client)
    return tag


async def others_answered_during_a_slow_body(tmp_path: Path, docker_client: Any, image: str, **extra: Any) -> bool:
    app = {"image": image, "hosts": [HOST], "retire_after": 0, "stop_timeout": 2, "env": {"ONE_WORKER": "1"},
           "healthchecks": {"web": [{"path": "/health", "content": "ok", "attempts": 30, "wait": 0.2, "timeout": 2}]},
           **extra}
    config = make_config(tmp_path, {"one": app})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("one")).ok
        reader, writer = await asyncio.open_connection("127.0.0.1", s.proxy.port)
        writer.write(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\n\r\n".encode())
        for byte in (b"a", b"b"):  # one byte a second
            writer.write(byte)
            await asyncio.sleep(1.0)
        try:
            async with aiohttp.ClientSession() as session, asyncio.timeout(1.5):
                async with session.get(f"http://127.0.0.1:{s.proxy.port}/", headers={"Host": HOST}) as resp:
                    answered = resp.status == 200
        except TimeoutError:
            answered = False
        writer.write(b"c")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        writer.close()
        return answered


async def test_buffering_by_default_keeps_a_one_worker_app_answering(
    tmp_path: Path, docker_client: Any, image: str
) -> None:
    assert await others_answered_during_a_slow_body(tmp_path, docker_client, image)


async def test_without_buffering_a_slow_body_holds_the_one_worker(
    tmp_path: Path, docker_client: Any, image: str
) -> None:
    assert not await others_answered_during_a_slow_body(tmp_path, docker_client, image, buffer_requests=False)
