"""Workers without a supervisor: found by their control sockets, then adopted or replaced.

A starting supervisor looks at `<state_dir>/workers/*.sock` before it binds anything. A worker
that answers `hello` with `attached: false` has lost its supervisor (killed with -9, or one
that handed its workers over in `serve --takeover`) and still serves the last table on the
listening sockets. The new supervisor takes those sockets back from it (`listeners`, by
SCM_RIGHTS: the same accept queue, so nothing is refused). A worker started with the options
the new supervisor would give it and running the same code (`adopt_workers`) is adopted: attached
and sent the current table, no process started and none stopped. Any other is replaced: the
supervisor starts its own workers with the current table, then tells those orphans to `stop`:
they close their listeners, finish their in-flight requests and exit. No gap either way.
Stale socket files (nobody listens) are removed. A worker attached to a live supervisor is not
an orphan and is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from proxy.channel import HEADER, encode
from proxy.compiled import code_fingerprint

if TYPE_CHECKING:
    from supervisor.daemon.dataplane.pool import WorkerPool

log = logging.getLogger("dockyard.supervisor")
TIMEOUT = 3.0


@dataclass
class Orphan:
    pid: int
    conn: socket.socket
    options: str = ""  # the options JSON it was started with
    code: str = ""  # proxy.compiled.code_fingerprint() of its code


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


def _find(directory: Path, handed_over: bool) -> list[Orphan]:
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
        if (status.get("attached") and not handed_over) or not status.get("serving"):
            conn.close()
            continue
        found.append(Orphan(int(status["pid"]), conn, str(status.get("options", "")),
                            str(status.get("code", ""))))
    return found


async def find_orphans(directory: Path, handed_over: bool = False) -> list[Orphan]:
    """The serving workers no supervisor holds; `handed_over`: also those still attached (the
    old daemon of a takeover has let go of them, and they may not have seen their channel close
    yet; our `attach` replaces its channel)."""
    orphans = await asyncio.to_thread(_find, directory, handed_over)
    if orphans and handed_over:
        log.info("takeover: workers handed over pids=%s", ",".join(str(o.pid) for o in orphans))
    elif orphans:
        log.warning("found workers of a supervisor that is gone pids=%s: they serve on until adopted "
                    "or replaced", ",".join(str(o.pid) for o in orphans))
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


async def adopt_workers(pool: WorkerPool, orphans: list[Orphan]) -> list[Orphan]:
    """Adopt the orphans the pool can: started with the options it would give them and running
    the same code. The others, to be retired."""
    options, code = pool.options_json(), code_fingerprint()
    same = [o.pid for o in orphans if o.options == options and o.code == code]
    taken = set(await pool.adopt(same)) if same else set()
    for orphan in orphans:
        if orphan.pid in taken:
            orphan.conn.close()  # our look at it: the pool has its own channel
    return [o for o in orphans if o.pid not in taken]
