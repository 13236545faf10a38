"""A proxy worker process: the data plane, fed by the supervisor over a unix socket.

    python -m proxy.worker --control-dir DIR --listen-fd N [--tls-fd M] --options JSON

It runs one `Proxy` on uvloop, accepting on listening sockets it inherited (the supervisor binds
them and passes the same sockets to every worker: one accept queue). It listens on its control
socket `DIR/<pid>.sock` (mode 0600), where the supervisor connects; messages are framed by proxy/channel.py:

| request (supervisor -> worker)                   | answer                                  |
| ------------------------------------------------ | --------------------------------------- |
| `attach` (this connection is the supervisor's)   | `pid`, `seq`, `serving`                 |
| `hello` (a look, e.g. by a restarted supervisor) | `pid`, `seq`, `serving`, `attached`, `options`, `code` |
| `routes` (a look at the installed table)         | `routes`: every Service field, plain    |
| `table` `seq` `apps` (the whole route table)     | `ack` = seq, once installed (one assignment) |
| `certs` `entries` `default`                      | `ok` (TLS certificates by SNI; a new `version` re-reads the files) |
| `challenges` `tokens`                            | `ok` (ACME HTTP-01 answers)             |
| `warm` `targets` `replacing`                     | `opened`                                |
| `drain` `targets` `timeout`                      | `cancelled`                             |
| `stats`                                          | `stats`, `releases`, `inflight`, `connections` |
| `stop_accepting`                                 | `ok` (listeners closed here, serving on)|
| `stop` `timeout`                                 | `ok` once stopped, then the process exits |
| `listeners`                                      | `count`, with the listening sockets attached (SCM_RIGHTS) |

The worker accepts no connection before its first table. When the supervisor's connection
closes (the supervisor died, or handed its workers to a new one in `serve --takeover`), the
worker keeps serving the last table and waits for a new supervisor, which adopts it when the
worker's `options` (the JSON it was started with) and `code` (`compiled.code_fingerprint`) are its own.
SIGTERM is `stop` with a 10 s grace; SIGINT is ignored (Ctrl-C is the supervisor's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from . import route_message
from .channel import encode, read_message
from .compiled import code_fingerprint
from .options import ProxyOptions
from .proxy import Proxy
from .tls import CertStore

log = logging.getLogger("dockyard.proxy")
STOP_GRACE = 10.0  # seconds in-flight requests get on SIGTERM
REPORT_EVERY = 0.5  # seconds between two passive-health reports of one target


class Worker:
    def __init__(self, proxy: Proxy, control: str, listen: socket.socket, tls: socket.socket | None,
                 options_json: str = "{}") -> None:
        self.proxy = proxy
        self.options_json = options_json
        self.code = code_fingerprint()
        self.control = control
        self.listen = listen
        self.tls = tls
        self.store = CertStore()
        self.certs: dict[str, tuple[tuple[str, ...], str, str, int]] = {}
        self.seq = 0
        self.serving = False
        self.attached: asyncio.StreamWriter | None = None
        self.done = asyncio.Event()
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.reported: dict[str, float] = {}  # target -> when it was last reported (passive health)
        proxy.on_target_failed(self._target_failed)

    def _target_failed(self, app: str, target: str) -> None:
        """Passive health: tell the supervisor, at most once per target every REPORT_EVERY s
        (a dead target under load fails many connections; the supervisor confirms one)."""
        now = time.monotonic()
        if now - self.reported.get(target, -REPORT_EVERY) < REPORT_EVERY:
            return
        self.reported[target] = now
        if len(self.reported) > 4096:  # bounded: forget the oldest reports
            for old in list(self.reported)[:2048]:
                del self.reported[old]
        writer = self.attached
        if writer is not None and not writer.is_closing():
            writer.write(encode({"event": "target_failed", "app": app, "target": target}))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: self._spawn(self.stop(STOP_GRACE)))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control)
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._handle, path=self.control)
        finally:
            os.umask(old_umask)
        log.info("Worker ready pid=%d control=%s", os.getpid(), self.control)
        try:
            await self.done.wait()
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.control)
            log.info("Worker exited pid=%d", os.getpid())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self, timeout: float, then: Any = None) -> None:
        """Close the listeners, let in-flight requests finish within `timeout`, then exit."""
        if self.stopping:
            return
        self.stopping = True
        try:
            if self.serving:
                await self.proxy.stop(timeout)
            if then is not None:
                await then()
        finally:
            self.done.set()

    # -- the channel ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                await self._dispatch(message, writer)
        except asyncio.CancelledError:  # the worker exits
            pass
        except Exception as exc:  # noqa: BLE001 - a bad message must not take the data plane down
            log.error("Control channel failed error=%r", exc)
        finally:
            if writer is self.attached:
                self.attached = None
                if not self.stopping:
                    log.warning("Supervisor gone pid=%d: serving the last table seq=%d", os.getpid(), self.seq)
            writer.close()

    def _status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "seq": self.seq, "serving": self.serving,
                "attached": self.attached is not None, "options": self.options_json, "code": self.code}

    async def _dispatch(self, msg: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        op, rid = msg.get("op"), msg.get("id")

        def reply(**fields: Any) -> None:
            if not writer.is_closing():  # the asker may be gone (a supervisor killed meanwhile)
                writer.write(encode({"id": rid, **fields}))

        if op == "table":  # in arrival order: a later drain sees this table installed
            services = [route_message.service(app) for app in msg["apps"]]
            self.proxy.set_routes(services)
            self.seq = int(msg["seq"])
            if not self.serving:
                await self._start_listeners()
            reply(ack=self.seq)
        elif op == "attach":
            self.attached = writer
            reply(**self._status())
        elif op == "routes":  # every field of the installed table (route_message.plain)
            reply(routes=[route_message.plain(s) for s in self.proxy.table.services.values()])
        elif op == "hello":
            reply(**self._status())
        elif op == "certs":
            self._install_certs(msg["entries"], msg.get("default"))
            reply(ok=True)
        elif op == "challenges":
            self.proxy.enable_edge().challenges = dict(msg["tokens"])
            reply(ok=True)
        elif op == "stats":
            reply(stats=self.proxy.stats_all(), releases=self.proxy.release_stats_all(),
                  inflight=self.proxy.inflight(), connections=list(self.proxy.connection_counts()))
        elif op == "stop_accepting":
            self.proxy.stop_accepting()
            reply(ok=True)
        elif op == "warm":
            async def warm() -> None:
                reply(opened=await self.proxy.warm(msg["targets"], msg["replacing"]))
            self._spawn(warm())
        elif op == "drain":
            async def drain() -> None:
                reply(cancelled=await self.proxy.drain(msg["targets"], float(msg["timeout"])))
            self._spawn(drain())
        elif op == "stop":
            async def stopped() -> None:
                reply(ok=True)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            self._spawn(self.stop(float(msg["timeout"]), stopped))
        elif op == "listeners":
            await writer.drain()
            self._send_listeners(writer, rid)
        else:
            reply(error=f"unknown op {op!r}")

    async def _start_listeners(self) -> None:
        host, port = self.listen.getsockname()[:2]
        await self.proxy.start(host, port, sock=self.listen)
        if self.tls is not None:
            host, port = self.tls.getsockname()[:2]
            await self.proxy.start_tls(host, port, self.store, sock=self.tls)
        self.serving = True

    def _install_certs(self, entries: list[dict[str, Any]], default: str | None) -> None:
        wanted = {e["name"]: (tuple(e["hosts"]), e["certfile"], e["keyfile"], int(e.get("version", 0)))
                  for e in entries}
        for name, entry in wanted.items():
            if self.certs.get(name) != entry or name not in self.store.names():
                hosts, certfile, keyfile, _ = entry
                try:
                    self.store.install(name, hosts, certfile, keyfile)
                except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                    log.error("Certificate not installed name=%s error=%s", name, exc)
                    continue
            self.certs[name] = entry
        for name in self.store.names():
            if name not in wanted:
                self.store.remove(name)
                self.certs.pop(name, None)
        self.store.default = default

    def _send_listeners(self, writer: asyncio.StreamWriter, rid: Any) -> None:
        """A restarted supervisor takes the listening sockets back (supervisor/daemon/dataplane.py)."""
        raw = writer.get_extra_info("socket")
        fds = [self.listen.fileno()] + ([self.tls.fileno()] if self.tls is not None else [])
        dup = socket.socket(fileno=os.dup(raw.fileno()))
        try:
            dup.setblocking(True)
            socket.send_fds(dup, [encode({"id": rid, "count": len(fds)})], fds)
        finally:
            dup.close()


class KvFormatter(logging.Formatter):
    """The supervisor's `kv` log lines (supervisor/ops/logs.py), with the worker's pid."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        line = (f"time={when} level={record.levelname.lower()} logger={record.name} "
                f"msg={record.getMessage()} worker={record.process}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def prioritise(nice: int) -> None:
    """Run this worker at `nice` (`[proxy] worker_priority`): below the supervisor's 0, requests
    win the CPU from builds, cron output and deploys on a busy machine (issue #19's isolation)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice == current:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        log.warning("Worker priority unchanged pid=%d nice=%d wanted=%d: needs root or CAP_SYS_NICE",
                    os.getpid(), current, nice)


USAGE = "usage: python -m proxy.worker --control-dir DIR --listen-fd N [--tls-fd M] [--options JSON]"
FLAGS = ("--control-dir", "--listen-fd", "--tls-fd", "--options")


def parse_args(argv: list[str]) -> dict[str, str]:
    """The flags the supervisor passes (no argparse: a worker's every MB counts, issue #19)."""
    if len(argv) % 2 or any(flag not in FLAGS for flag in argv[::2]):
        raise SystemExit(f"{USAGE}\nbad arguments: {' '.join(argv)}")
    args = dict(zip(argv[::2], argv[1::2], strict=True))
    if "--control-dir" not in args or not args.get("--listen-fd", "").isdigit():
        raise SystemExit(f"{USAGE}\n--control-dir and a numeric --listen-fd are required")
    if not args.get("--tls-fd", "0").isdigit():
        raise SystemExit(f"{USAGE}\n--tls-fd must be a number")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KvFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    options_json = args.get("--options", "{}")
    values = json.loads(options_json)
    values["trusted_proxies"] = tuple(values.get("trusted_proxies", ()))
    values["workers"] = 0
    options = ProxyOptions(**values)
    prioritise(options.worker_priority)
    proxy = Proxy(options)
    listen = socket.socket(fileno=int(args["--listen-fd"]))
    tls = socket.socket(fileno=int(args["--tls-fd"])) if "--tls-fd" in args else None
    control = os.path.join(args["--control-dir"], f"{os.getpid()}.sock")  # no pathlib in a worker: ~0.6 MB
    worker = Worker(proxy, control, listen, tls, options_json)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio works too
        asyncio.run(worker.run())
    else:
        uvloop.run(worker.run())
    return 0


def leave(code: int) -> None:
    """Exit without the interpreter's teardown, after flushing the logs: the worker is done,
    and tearing its modules down is ~13 ms of CPU that lands in a takeover's or a stop's
    window, on the machine whose other workers are serving (issue #19)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
