"""The control channel between the supervisor and a proxy worker: length-prefixed JSON messages.

A frame is a 4-byte big-endian length, then that many bytes of one JSON object. The supervisor
sends requests (`{"op": ..., "id": N, ...}`) and the worker answers each with `{"id": N, ...}`,
in the order it finishes them; the route table (`{"op": "table", "seq": N, "apps": [...]}`) is
installed in the order it arrives and answered `{"id": N, "ack": seq}`. Worker -> supervisor
events carry `"event"` and no id. The message kinds are listed in proxy/worker.py.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

HEADER = struct.Struct("!I")
MAX_MESSAGE = 64 << 20  # a route table of thousands of apps is far below it


class ChannelError(Exception):
    """A frame that is too large or not a JSON object."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream (the other side went away)."""
    try:
        head = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        if size > MAX_MESSAGE:
            raise ChannelError(f"message of {size} bytes")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ChannelError("a message must be a JSON object")
    return message
