"""Workers left by a supervisor that died (kill -9): found by their control sockets, then replaced.

A restarted supervisor looks at `<state_dir>/workers/*.sock` before it binds anything. A worker
that answers `hello` with `attached: false` has lost its supervisor and still serves the last
table on the listening sockets. The new supervisor takes those sockets back from it
(`listeners`, by SCM_RIGHTS: the same accept queue, so nothing is refused), starts its own
workers with the current table, then tells the orphans to `stop`: they close their listeners,
finish their in-flight requests and exit. No gap: the orphans accept until the new workers do.
Stale socket files (nobody listens) are removed. A worker attached to a live supervisor (the
old daemon during `serve --takeover`) is not an orphan and is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from proxy.channel import HEADER, encode

log = logging.getLogger("dockyard.supervisor")
TIMEOUT = 3.0


@dataclass
class Orphan:
    pid: int
    conn: socket.socket


def _read(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack(data[:HEADER.size])[0]:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    result: dict[str, Any] = orjson.loads(data[HEADER.size:])
    return result


def _alive(pid: str) -> bool:
    """A worker still starting (its socket bound, not yet listening) keeps its file."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _find(directory: Path) -> list[Orphan]:
    found = []
    for path in sorted(directory.glob("*.sock")) if directory.is_dir() else []:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(TIMEOUT)
        try:
            conn.connect(str(path))
            conn.sendall(encode({"op": "hello", "id": 1}))
            status = _read(conn)
        except OSError:
            conn.close()
            if not _alive(path.stem):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # nobody listens: a worker that died with its supervisor
            continue
        if status.get("attached") or not status.get("serving"):
            conn.close()
            continue
        found.append(Orphan(int(status["pid"]), conn))
    return found


async def find_orphans(directory: Path) -> list[Orphan]:
    orphans = await asyncio.to_thread(_find, directory)
    if orphans:
        log.warning("found workers of a supervisor that is gone pids=%s: they serve until ours start",
                    ",".join(str(o.pid) for o in orphans))
    return orphans


def _listeners(orphan: Orphan) -> list[socket.socket]:
    orphan.conn.sendall(encode({"op": "listeners", "id": 2}))
    _msg, fds, _flags, _addr = socket.recv_fds(orphan.conn, 65536, 4)
    return [socket.socket(fileno=fd) for fd in fds]


async def take_listeners(orphans: list[Orphan]) -> list[socket.socket]:
    """The listening sockets the orphans accept on (plain first, then TLS), or [] if none gives them."""
    for orphan in orphans:
        try:
            socks = await asyncio.to_thread(_listeners, orphan)
        except OSError as exc:
            log.warning("could not take the listeners of worker pid=%d error=%s", orphan.pid, exc)
            continue
        if socks:
            log.info("took the listeners of worker pid=%d count=%d", orphan.pid, len(socks))
            return socks
    return []


async def retire_orphans(orphans: list[Orphan], timeout: float) -> None:
    """Our workers accept now: the orphans stop accepting, finish in-flight requests, exit."""
    for orphan in orphans:
        with contextlib.suppress(OSError):
            orphan.conn.sendall(encode({"op": "stop", "id": 3, "timeout": timeout}))
        orphan.conn.close()
        log.info("retiring worker of the previous supervisor pid=%d", orphan.pid)
