"""`dockyard run` and `dockyard enter`: commands in an app's containers, output streamed, the
command's exit code as dockyard's.

The daemon creates a `run` container (the serving release's image, env, volumes, network,
limits) and removes it when this command's control connection closes; the bytes themselves go
between this process and the Docker engine's socket (attach, exec), as `docker run -it` does:
the CLI runs as root on the server, and a terminal (raw mode, window size, Ctrl-C as a byte
for the command's TTY) belongs next to the terminal, not behind a JSON stream. The engine is
reached through the runtime layer's one door (runtime/engine.py: the client, its timeouts, its
errors as one line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from typing import Any

from supervisor.cli.common import ClientFactory, SubParsers, add_command
from supervisor.cli.env import parse_assignments
from supervisor.cli.exits import EXIT_FAIL, EXIT_INTERRUPTED
from supervisor.model.errors import DockyardError
from supervisor.runtime import engine

DEFAULT_SHELL = ("/bin/sh",)


def _raw_socket(sock: Any) -> Any:
    return getattr(sock, "_sock", sock)  # docker-py wraps the socket in a SocketIO


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(sys.stdin.fileno())
    except OSError:
        size = shutil.get_terminal_size((80, 24))
    return size.lines, size.columns


def pump(sock: Any, resize: Any) -> None:
    """Copy stdin to `sock` and `sock` to stdout until the container's side ends, in raw mode;
    the window size follows the terminal's (SIGWINCH)."""
    raw = _raw_socket(sock)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    previous = signal.signal(signal.SIGWINCH, lambda *_: resize(*_size()))
    try:
        with _raw_terminal():
            resize(*_size())
            reading = [raw, stdin]
            sized = False
            while True:
                ready, _, _ = select.select(reading, [], [])
                if raw in ready:
                    data = raw.recv(65536)
                    if not data:
                        return
                    os.write(stdout, data)
                    if not sized:  # the engine may take a resize only once the TTY is up
                        sized = True
                        resize(*_size())
                if stdin in ready:
                    data = os.read(stdin, 65536)
                    if data:
                        raw.sendall(data)
                    else:  # our stdin ended: tell the command, keep reading its output
                        reading.remove(stdin)
                        with contextlib.suppress(OSError):
                            raw.shutdown(1)
    finally:
        signal.signal(signal.SIGWINCH, previous)


def _write_output(chunks: Any) -> None:
    for out, err in chunks:
        if out:
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        if err:
            sys.stderr.buffer.write(err)
            sys.stderr.buffer.flush()


def run(client: Any, app: str, command: list[str], *, process: str | None, env: dict[str, str],
        interactive: bool) -> int:
    if interactive and not sys.stdin.isatty():
        raise DockyardError("-it needs a terminal: stdin is not a TTY (drop -it to stream output)")
    docker = engine.connect(engine.STREAM_TIMEOUT)  # api.wait lasts as long as the command
    body = {"command": command, "process": process, "env": env, "tty": interactive}
    with client.hold(f"/v1/apps/{app}/run", body) as events:
        created = next(events, None)
        if not created or created.get("event") != "created":
            raise DockyardError(f"the daemon did not create the container: {created}")
        cid = created["id"]
        api = docker.api
        try:
            if interactive:
                sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                api.start(cid)
                pump(sock, lambda h, w: _quiet(api.resize, cid, height=h, width=w))
            else:  # attached before the start: nothing is missed, and the stream ends with it
                output = api.attach(cid, stdout=True, stderr=True, stream=True, logs=True, demux=True)
                api.start(cid)
                _write_output(output)
            code = int(api.wait(cid).get("StatusCode", EXIT_FAIL))
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        finally:
            _quiet(api.remove_container, cid, force=True)  # the daemon would too, when we hang up
    return code


def enter(client: Any, app: str, which: str | None, command: list[str]) -> int:
    rows = [r for r in client.get(f"/v1/ps?app={app}") if r.get("status") == "running"]
    chosen = pick(rows, app, which)
    api = engine.connect(engine.STREAM_TIMEOUT).api
    interactive = sys.stdin.isatty()
    exec_id = api.exec_create(chosen["id"], command or list(DEFAULT_SHELL), stdin=interactive,
                              tty=interactive)["Id"]
    try:
        if interactive:
            sock = api.exec_start(exec_id, socket=True, tty=True)
            pump(sock, lambda h, w: _quiet(api.exec_resize, exec_id, height=h, width=w))
        else:
            _write_output(api.exec_start(exec_id, stream=True, demux=True))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    code = api.exec_inspect(exec_id).get("ExitCode")
    return int(code) if code is not None else EXIT_FAIL


def pick(rows: list[dict[str, Any]], app: str, which: str | None) -> dict[str, Any]:
    """The container `which` names (its name, its name's end like `web.2`, or a process type),
    else the first serving web container, else the first running one."""
    apps = [r for r in rows if r.get("process") != "run"]
    if which:
        for match in (lambda r: r["name"] == which, lambda r: r["name"].endswith("." + which)
                      or f".{which}." in r["name"], lambda r: r.get("process") == which):
            found = sorted((r for r in apps if match(r)), key=lambda r: r["name"])
            if found:
                return found[0]
        names = ", ".join(r["name"] for r in apps) or "none"
        raise DockyardError(f"app {app!r} has no running container {which!r} (running: {names})")
    ranked = sorted(apps, key=lambda r: (not r.get("serving"), r.get("process") != "web", r["name"]))
    if not ranked:
        raise DockyardError(f"app {app!r} has no running container to enter")
    return ranked[0]


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(Exception):
        fn(*args, **kwargs)


def _command(args: argparse.Namespace) -> list[str]:
    """The words after `--` (main.py keeps them apart), or the positional ones without it."""
    words = getattr(args, "command_words", None)
    return list(words) if words is not None else list(getattr(args, "cmd", None) or [])


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    def cmd_run(args: argparse.Namespace) -> int:
        env = parse_assignments(args.env or [])
        with engine.translated():  # a refusal (a command not in the image...): one line
            return run(client_factory(args), args.app, _command(args), process=args.process,
                       env=env, interactive=args.it)

    def cmd_enter(args: argparse.Namespace) -> int:
        with engine.translated():  # a refusal (a command not in the image...): one line
            return enter(client_factory(args), args.app, args.container, _command(args))

    p = add_command(sub, common, "run", cmd_run, "a one-off command in a new container of the app's "
                    "serving release: dockyard run APP [-it] [-p PROCESS] [--env K=V] -- CMD ...")
    p.add_argument("-it", "--interactive", dest="it", action="store_true",
                   help="an interactive terminal (stdin, window size, Ctrl-C to the command)")
    p.add_argument("-p", "--process", metavar="TYPE",
                   help="run as this process type (its $DYNO; its command when no CMD is given)")
    p.add_argument("-e", "--env", action="append", metavar="K=V", help="extra env var (repeatable)")
    p.add_argument("app")
    p.add_argument("cmd", nargs="*", metavar="-- CMD")
    p.set_defaults(trailing=True)
    p = add_command(sub, common, "enter", cmd_enter, "a command (default a shell) inside a running "
                    "container of the app: dockyard enter APP [CONTAINER] [-- CMD ...]")
    p.add_argument("app")
    p.add_argument("container", nargs="?", help="a container name, its end (web.2) or a process type")
    p.set_defaults(trailing=True)
