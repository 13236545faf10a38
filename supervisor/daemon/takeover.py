"""Handing the listening sockets to a new daemon without a gap, and systemd socket activation.

`dockyard serve --takeover` (the new process) connects to the running daemon's takeover socket
(`<state_dir>/takeover.sock`, mode 0600) and receives its listening sockets by SCM_RIGHTS. It
loads the state, adopts the containers and starts accepting on the *same* sockets; only then
does it send RELEASE, and the old process stops accepting, answers RELEASED, drains its
in-flight requests (WebSockets included) up to its grace time and exits. The kernel's accept
queue belongs to the socket, not to a process, so no connection is refused or reset meanwhile.

Protocol (one line each way): new -> `HELLO`; old -> `FDS <n> workers=<k>` with n descriptors
attached (or `BUSY <reason>`); new -> `RELEASE`; old -> `RELEASED`.

With proxy worker processes on both sides (k > 0 and a new daemon with `[proxy] workers`), the
data plane is not restarted: once the new daemon is ready, it sends `HANDOVER` instead of
`RELEASE`; the old daemon lets go of its workers without stopping them (they serve on with the
last table) and answers `RELEASED`; the new daemon adopts them (dataplane/orphans.py: same
options, same code; any other is replaced without a gap) and the old one exits.

systemd: with `LISTEN_PID`/`LISTEN_FDS` set (socket activation, sd_listen_fds(3)), the
listener is inherited as fd 3 and `systemctl restart` queues connections in the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from supervisor.model.errors import DockyardError

log = logging.getLogger("dockyard.supervisor")
SD_LISTEN_FDS_START = 3
HANDSHAKE_TIMEOUT = 30.0


class TakeoverError(DockyardError):
    """The running daemon could not hand over."""


def systemd_sockets() -> list[socket.socket]:
    """Listening sockets passed by systemd socket activation (empty when there are none)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)  # not inherited by children
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    return socks


class Handoff:
    """The new daemon's side: sockets received, RELEASE to send once it accepts."""

    def __init__(self, conn: socket.socket, sockets: list[socket.socket], workers: int = 0) -> None:
        self._conn = conn
        self.sockets = sockets
        self.workers = workers  # the old daemon's proxy worker processes (0: in-process proxy)
        self.released = False

    async def release(self, handover: bool = False) -> None:
        """RELEASE: the old daemon stops accepting and exits. HANDOVER: it lets go of its
        workers, serving, for this daemon to adopt, and exits."""
        word = "HANDOVER" if handover else "RELEASE"

        def exchange() -> None:
            self._conn.sendall(f"{word}\n".encode())
            answer = _readline(self._conn)
            if answer != "RELEASED":
                raise TakeoverError(f"the old daemon answered {answer!r} to {word}")

        try:
            await asyncio.to_thread(exchange)
        finally:
            self.released = True
            self._conn.close()

    def abandon(self) -> None:
        """The new daemon failed: close the channel; the old one keeps serving."""
        self._conn.close()


def _readline(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


async def request_handoff(path: Path) -> Handoff | None:
    """Ask the daemon on `path` for its listeners; None when no daemon runs there."""

    def connect() -> Handoff | None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            return None
        conn.sendall(b"HELLO\n")
        msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 16)
        line = msg.decode(errors="replace").strip()
        if not line.startswith("FDS"):
            for fd in fds:
                os.close(fd)
            conn.close()
            raise TakeoverError(f"the running daemon refused the takeover: {line}")
        words = dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
        workers = int(words["workers"]) if words.get("workers", "").isdigit() else 0
        return Handoff(conn, [socket.socket(fileno=fd) for fd in fds], workers)

    return await asyncio.to_thread(connect)


class TakeoverServer:
    """The running daemon's side. `on_release(handover)` stops accepting everywhere (or, for a
    handover, lets go of the proxy workers), then returns."""

    def __init__(
        self,
        path: Path,
        listeners: Callable[[], list[socket.socket]],
        busy: Callable[[], str | None],
        on_release: Callable[[bool], Awaitable[None]],
        workers: Callable[[], int] = lambda: 0,
    ) -> None:
        self.path = path
        self._listeners = listeners
        self._workers = workers
        self._busy = busy
        self._on_release = on_release
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        finally:
            os.umask(old_umask)

    async def close(self, unlink: bool = True) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT)
            if hello.strip() != b"HELLO":
                return
            reason = self._busy()
            raw = writer.get_extra_info("socket")
            if reason or raw is None:
                writer.write(f"BUSY {reason or 'no socket'}\n".encode())
                await writer.drain()
                return
            fds = [s.fileno() for s in self._listeners()]
            dup = socket.socket(fileno=os.dup(raw.fileno()))
            try:
                dup.setblocking(True)
                socket.send_fds(dup, [f"FDS {len(fds)} workers={self._workers()}\n".encode()], fds)
            finally:
                dup.close()
            log.info("takeover: listeners sent fds=%d; waiting for the new daemon", len(fds))
            line = (await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT * 4)).strip()
            if line not in (b"RELEASE", b"HANDOVER"):
                log.warning("takeover abandoned by the new daemon; still serving")
                return
            await self._on_release(line == b"HANDOVER")
            writer.write(b"RELEASED\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.warning("takeover failed error=%r; still serving", exc)
        finally:
            writer.close()
