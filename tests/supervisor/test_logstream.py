"""runtime/logstream.py: a followed container's output, demultiplexed from large reads; and
stream_in_thread's batching. The pure parts on canned frames; the real one against Docker,
byte for byte with the SDK's own `logs(stream=True)`."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from supervisor.runtime.engine import stream_in_thread
from supervisor.runtime.logstream import demux, follow_logs
from tests.conftest import TEST_LABELS


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    raw = frame(1, b"out one\n") + frame(2, b"err one\n") + frame(1, b"") + frame(1, b"out two\n" * 50)
    expected = b"out one\nerr one\n" + b"out two\n" * 50
    for cut in range(1, len(raw)):
        assert b"".join(demux([raw[:cut], raw[cut:]])) == expected
    assert b"".join(demux(raw[i:i + 1] for i in range(len(raw)))) == expected  # byte by byte


def test_complete_frames_of_one_read_are_one_piece_and_a_torn_tail_is_dropped() -> None:
    raw = frame(1, b"a\n") + frame(2, b"b\n") + frame(1, b"c\n")
    assert list(demux([raw, frame(1, b"never ends")[:9]])) == [b"a\nb\nc\n"]


async def test_stream_in_thread_hands_over_every_item_in_order_in_batches() -> None:
    gate = threading.Event()

    def items() -> Iterator[int]:
        yield 0
        gate.wait(5)  # the rest arrive while the loop is away
        yield from range(1, 2000)

    seen: list[int] = []
    async for item in stream_in_thread(items(), "test-batches"):
        seen.append(item)
        if item == 0:
            gate.set()
            time.sleep(0.2)  # block the loop: the thread queues the rest meanwhile
    assert seen == list(range(2000))


@pytest.mark.docker
@pytest.mark.parametrize("tty", [False, True])
async def test_followed_logs_are_the_sdks_byte_for_byte(docker_client: Any, app_images: dict[str, str],
                                                        tty: bool) -> None:
    api = docker_client.api
    script = "i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; sleep 1; echo last"
    cid = api.create_container(app_images["v1"], command=["sh", "-c", script], tty=tty, labels=TEST_LABELS)["Id"]
    try:
        api.start(cid)
        stream = await asyncio.to_thread(follow_logs, api, cid)  # followed while it prints
        ours = b"".join([piece async for piece in stream_in_thread(stream, "test-logs")])
        sdk = b"".join(api.logs(cid, stream=True, follow=True, stdout=True, stderr=True))
        assert ours == sdk
        newline = b"\r\n" if tty else b"\n"
        assert ours.count(newline) == 6001 and ours.endswith(b"last" + newline)
    finally:
        api.remove_container(cid, force=True)


@pytest.mark.docker
async def test_closing_a_followed_stream_ends_the_reader(docker_client: Any, app_images: dict[str, str]) -> None:
    api = docker_client.api
    cid = api.create_container(app_images["v1"], command=["sh", "-c", "echo up; sleep 60"],
                               labels=TEST_LABELS)["Id"]
    try:
        api.start(cid)
        stream = await asyncio.to_thread(follow_logs, api, cid)
        async for piece in stream_in_thread(stream, "test-close"):
            assert piece == b"up\n"
            break  # the consumer leaves: stream_in_thread closes the response
        # the thread reading it was blocked in the socket, with the container still running
        pump = next(t for t in threading.enumerate() if t.name == "test-close")
        await asyncio.to_thread(pump.join, 5)
        assert not pump.is_alive()
    finally:
        api.remove_container(cid, force=True)
