"""A container's followed output, read in large pieces and demultiplexed here.

Docker sends a container's stdout and stderr (without a TTY) as frames: an 8-byte header
(stream byte, three zero bytes, a big-endian length) and the payload, each frame one write
of the program's, often one line. The SDK's `logs(stream=True)` reads every frame with two
`read()`s through urllib3 and http.client: for a cron run printing 1 MiB in 100-byte lines,
that was 10,000 frames and, over 20 runs, the largest share of the supervisor's CPU while it
served (issue #19's isolation, py-spy in bench/RESULTS.md). Here the response is read up to
64 KiB at a time and every complete frame in it is joined into one piece: stdout and stderr
interleaved in the order written, as a terminal shows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from docker.types import CancellableStream

HEADER = 8
READ = 64 * 1024


def demux(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The payloads of the frames in `pieces` (the raw stream, split anywhere), each yield
    everything complete so far; a partial frame at the end of the stream is dropped."""
    buf = bytearray()
    for piece in pieces:
        buf += piece
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while size - pos >= HEADER:
            length = int.from_bytes(buf[pos + 4:pos + HEADER], "big")
            if size - pos - HEADER < length:
                break
            out.append(bytes(buf[pos + HEADER:pos + HEADER + length]))
            pos += HEADER + length
        del buf[:pos]
        if out:
            yield b"".join(out)


def follow_logs(api: Any, container_id: str) -> CancellableStream:
    """Blocking: open `GET /containers/{id}/logs?follow=1` (stdout and stderr, from the start)
    on the SDK's APIClient `api`, as its own `logs(stream=True, follow=True)` does; iterate the
    result for bytes, `close()` it (from any thread) to stop following: the SDK's own
    CancellableStream, which shuts the socket down under a reader blocked in it."""
    tty = bool(api.inspect_container(container_id)["Config"].get("Tty"))
    response = api._get(api._url("/containers/{0}/logs", container_id),
                        params={"stdout": 1, "stderr": 1, "follow": 1, "timestamps": 0, "tail": "all"},
                        stream=True)
    # raises for an error status; then no read timeout: a quiet job must not end the follow
    api._disable_socket_timeout(api._get_raw_response_socket(response))
    pieces = response.iter_content(READ)
    return CancellableStream(iter(pieces) if tty else demux(pieces), response)
