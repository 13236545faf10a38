"""`dockyard ...` end to end without Docker: the real parser and commands against a stub
daemon on a unix socket (stdlib http.server), checked byte for byte against the output the
commands printed before the CLI was split into layers (tests/fixtures/cli/golden.json).

Regenerate the golden file only on purpose: DOCKYARD_CLI_GOLDEN=write pytest tests/supervisor/test_cli.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import orjson
import pytest

from supervisor.cli.argv import command_of
from supervisor.cli.exits import EXIT_FAIL, EXIT_INTERRUPTED, run
from supervisor.cli.main import DECLARED_IN, REGISTRARS, build_parser, main
from supervisor.config.control import control_socket
from supervisor.config.loader import load_config
from supervisor.model.defaults import CLI_NICE, START_NICE
from supervisor.model.errors import ConfigError, ControlError, Problem

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "cli" / "golden.json"

PS = [
    {"app": "web", "process": "web", "name": "web.web.1.r3", "release": 3, "status": "running",
     "serving": True, "healthy": True, "target": "172.17.0.2:5000", "inflight": 2, "restarts": 0,
     "exit_code": None},
    {"app": "web", "process": "worker", "name": "web.worker.1.r3", "release": 3, "status": "exited",
     "serving": False, "healthy": None, "target": None, "inflight": 0, "restarts": 4, "exit_code": 137},
]
ROUTES = [
    {"app": "web", "hosts": ["web.test", "*.web.test"], "path_prefix": "/", "release": 3,
     "targets": ["172.17.0.2:5000", "172.17.0.3:5000"]},
    {"app": "api", "hosts": [], "path_prefix": "/api", "release": None, "targets": []},
]
RELEASES = [
    {"number": 3, "image": "web:v3", "kind": "deploy", "status": "succeeded", "created_at": 100.0,
     "finished_at": 112.25, "reason": None},
    {"number": 2, "image": "web:v2", "kind": "rollback", "status": "failed", "created_at": 50.0,
     "finished_at": None, "reason": "web check failed"},
]
DEPLOY_OK = [
    {"event": "deploying", "app": "web", "release": 4, "image": "web:v4"},
    {"event": "step", "step": "pull", "status": "start"},
    {"event": "step", "step": "pull", "status": "done", "seconds": 1.5},
    {"event": "step", "step": "swap", "status": "done", "seconds": 0.01,
     "targets": ["172.17.0.4:5000", "172.17.0.5:5000"]},
    {"event": "deployed", "app": "web", "release": 4, "seconds": 3.25, "warnings": ["slow start"]},
    {"event": "result", "ok": True, "release": 4},
]
DEPLOY_FAILED = [
    {"event": "deploying", "app": "web", "release": 5, "image": "web:bad"},
    {"event": "step", "step": "check", "status": "failed", "seconds": 2, "error": "HTTP 500"},
    {"event": "failed", "app": "web", "release": 5, "reason": "web check failed"},
    {"event": "result", "ok": False, "release": 5, "reason": "web check failed"},
]
REFUSED = [{"event": "result", "ok": False, "reason": "a deploy of 'web' is running"}]
BUILD = [
    {"event": "build", "status": "start", "image": "web:local-1", "context": "12 KiB"},
    {"event": "build", "line": "Step 1/2 : FROM busybox"},
    {"event": "warning", "message": "no .dockerignore"},
    {"event": "build", "status": "done", "image": "web:local-1"},
    *DEPLOY_OK,
]
CRON = [
    {"app": "web", "id": "cleanup", "schedule": "*/5 * * * *", "next_run": "2026-01-01T00:05:00+00:00",
     "suspended": False, "running": 0, "max_concurrent": 3, "command": "rake cleanup:all --verbose",
     "last": {"status": "succeeded", "exit_code": 0, "ended": "2026-01-01T00:00:03+00:00"}},
    {"app": "web", "id": "report", "schedule": "@daily", "next_run": None, "suspended": True,
     "running": 0, "max_concurrent": 3, "command": "report", "last": None},
]
RUNS = [
    {"id": 7, "scheduled": 1767225600.0, "started": 1767225600.5, "ended": 1767225603.0,
     "manual": False, "status": "succeeded", "exit_code": 0, "release": 3},
    {"id": 6, "scheduled": None, "started": None, "ended": None, "manual": True,
     "status": "skipped", "exit_code": None, "release": None},
]
CRON_RUN = [
    {"event": "output", "line": "cleaning"},
    {"event": "output", "line": "done"},
    {"event": "result", "status": "failed", "exit_code": 3},
]
STATUS = {"version": "0.1.0", "pid": 42, "uptime": 3723.4, "config": "/etc/dockyard/dockyard.toml",
          "apps": [{"app": "web", "release": 3, "hosts": ["web.test"], "path_prefix": "/",
                    "targets": ["172.17.0.2:5000"]}],
          "tls": {"web": {"mode": "acme", "expires": "2026-03-01", "issuer": None}}}
RELOAD = {"plan": {"added": ["api"], "removed": [], "changed": ["web"], "scaled": [], "rerouted": [],
                   "needs_restart": ["server.listen"]},
          "deploys": {"api": {"ok": True, "release": 1},
                      "web": {"ok": False, "release": 4, "reason": "web check failed"}}}
RELOAD_NOTHING = {"plan": {"added": [], "removed": [], "changed": [], "scaled": [], "rerouted": [],
                           "needs_restart": []}, "deploys": {}}

ANSWERS: dict[tuple[str, str], tuple[int, Any]] = {
    ("GET", "/v1/ps"): (200, PS),
    ("GET", "/v1/ps?app=web"): (200, PS),
    ("GET", "/v1/routes"): (200, ROUTES),
    ("GET", "/v1/apps/web/releases"): (200, RELEASES),
    ("POST", "/v1/apps/web/deploy"): (200, DEPLOY_OK),
    ("POST", "/v1/apps/bad/deploy"): (200, DEPLOY_FAILED),
    ("POST", "/v1/apps/busy/deploy"): (200, REFUSED),
    ("POST", "/v1/apps/web/rollback"): (200, DEPLOY_FAILED),
    ("POST", "/v1/apps/web/build-deploy"): (200, BUILD),
    ("POST", "/v1/apps/web/stop"): (200, {"app": "web", "stopped": 2}),
    ("POST", "/v1/apps/web/scale"): (200, {"app": "web", "scale": {"web": 3, "worker": 0}}),
    ("POST", "/v1/reload"): (200, RELOAD),
    ("GET", "/v1/status"): (200, STATUS),
    ("GET", "/v1/cron"): (200, CRON),
    ("GET", "/v1/cron?app=web"): (200, CRON),
    ("POST", "/v1/apps/web/cron/cleanup/run"): (200, CRON_RUN),
    ("POST", "/v1/apps/web/cron/cleanup/suspend"): (200, {}),
    ("GET", "/v1/apps/web/cron/cleanup/runs?limit=20"): (200, RUNS),
    ("POST", "/v1/apps/nope/deploy"): (404, {"error": "unknown app 'nope'"}),
    ("POST", "/v1/apps/garbled/deploy"): (200, ["not json"]),
    ("POST", "/v1/apps/web/start"): (409, {"error": "invalid config", "problems": ["a: bad", "b: worse"]}),
}
STREAMED = {"deploy", "rollback", "build-deploy", "run"}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = ANSWERS.get((self.command, self.path), (404, {"error": "no such route"}))
        streamed = status == 200 and self.path.rsplit("/", 1)[-1] in STREAMED
        if streamed:
            data = b"".join((e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n" for e in body)
        else:
            data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/x-ndjson" if streamed else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with dockyard.toml whose control socket is a stub daemon answering ANSWERS."""
    home = tmp_path_factory.mktemp("cli")
    sock = home / "control.sock"
    (home / "dockyard.toml").write_text(
        f'[server]\nstate_dir = "{home}/state"\ncontrol_socket = "{sock}"\n'
        '[apps.web]\nimage = "web:v1"\nhosts = ["web.test"]\n'
    )
    (home / "bad.toml").write_text('[apps.web]\nimage = 3\n[apps."no way"]\nimage = "x"\n')
    (home / "ctx").mkdir()
    (home / "ctx" / "Dockerfile").write_text("FROM busybox\n")
    server = _Server(str(sock), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield home
    server.shutdown()
    server.server_close()


CASES: list[tuple[str, ...]] = [
    ("ps",),
    ("ps", "web"),
    ("ps", "--json"),
    ("routes",),
    ("releases", "web"),
    ("deploy", "web"),
    ("deploy", "bad"),
    ("deploy", "busy"),
    ("deploy", "nope"),
    ("deploy", "web", "--build", "{home}/ctx"),
    ("deploy", "web", "--build", "{home}/missing"),
    ("rollback", "web"),
    ("start", "web"),
    ("stop", "web"),
    ("scale", "web", "web=3", "worker=0"),
    ("scale", "web", "web"),
    ("reload",),
    ("status",),
    ("status", "--json"),
    ("cron", "list"),
    ("cron", "list", "web"),
    ("cron", "run", "web", "cleanup"),
    ("cron", "suspend", "web", "cleanup"),
    ("cron", "runs", "web", "cleanup"),
    ("cron",),
    ("git", "init", "nope"),
    ("validate",),
    ("validate", "{home}/bad.toml"),
    ("validate", "{home}/missing.toml"),
    ("ps", "-c", "{home}/missing.toml"),
    (),
]


def run_cli(home: Path, argv: tuple[str, ...]) -> dict[str, Any]:
    words = [w.format(home=home) for w in argv]
    if not any(w in ("-c", "validate") for w in words):
        words += ["-c", str(home / "dockyard.toml")]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(words)
    clean = lambda s: s.replace(str(home), "<home>")  # noqa: E731
    return {"code": code, "out": clean(out.getvalue()), "err": clean(err.getvalue())}


def test_every_command_prints_what_it_printed_before(stub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps help to the terminal width
    monkeypatch.delenv("DOCKYARD_CONFIG", raising=False)
    monkeypatch.chdir(stub / "ctx")  # no dockyard.toml here: `validate` alone finds none
    time.tzset()
    try:
        got = {" ".join(argv): run_cli(stub, argv) for argv in CASES}
    finally:
        monkeypatch.undo()
        time.tzset()
    if os.environ.get("DOCKYARD_CLI_GOLDEN") == "write":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2) + b"\n")
    want = orjson.loads(GOLDEN.read_bytes())
    for case in got:
        assert got[case] == want[case], case
    assert got.keys() == want.keys()


HEAVY = ("aiohttp", "docker", "apscheduler", "asyncio", "multiprocessing", "proxy",
         "supervisor.config.loader", "supervisor.model.spec")


def test_help_imports_no_heavy_library() -> None:
    """`dockyard --help` (and the parser every command builds) stays quick: no aiohttp, docker
    or apscheduler until a command needs them, and not the config loader, the model's types,
    the proxy or asyncio either: a `dockyard deploy` starts in ~60 ms of CPU instead of ~180 ms,
    on the server whose proxy is taking the swap (issue #19)."""
    probe = ("import sys, contextlib, io\n"
             "from supervisor.cli.main import main\n"
             "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
             "    main(['--help'])\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_deploy_parser_loads_neither_shutil_nor_subprocess() -> None:
    """argparse imports shutil (with bz2, lzma) for the help's width from every argument it
    declares, and `deploy --build`'s git helpers bring subprocess: ~5 ms of a `dockyard deploy`'s
    ~40 ms of CPU, spent on the server it is swapping (issue #19). The help still fits $COLUMNS."""
    probe = ("import sys\n"
             "from supervisor.cli.main import build_parser\n"
             "args = build_parser('deploy').parse_args(['deploy', 'web', '--image', 'x:1'])\n"
             "print(args.image, sorted(m for m in ('shutil', 'subprocess') if m in sys.modules))\n"
             "print(build_parser('deploy').format_help())\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True, env={**os.environ, "COLUMNS": "50"})
    first, *helped = done.stdout.splitlines()
    assert first == "x:1 []", done.stderr
    assert helped[0].startswith("usage: dockyard [-h] [-c CONFIG] COMMAND")
    assert max(len(line) for line in helped) <= 50


# errors become one message and an exit code, never a traceback ------------------------------


def test_a_broken_stream_is_a_message_and_exit_code_1(stub: Path) -> None:
    got = run_cli(stub, ("deploy", "garbled"))
    assert got["code"] == 1 and got["out"] == ""
    assert got["err"].startswith("dockyard: the daemon's stream on <home>/control.sock broke off: ")
    assert got["err"].count("\n") == 1


def test_install_that_cannot_write_is_a_message_and_exit_code_1(stub: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    got = run_cli(stub, ("install", "--no-binary", "--prefix", str(tmp_path / "file")))
    assert got["code"] == 1 and got["out"] == ""
    assert got["err"].startswith("dockyard: cannot install: [Errno 20] Not a directory: ")
    assert got["err"].count("\n") == 1


def test_exit_codes_of_errors_and_interrupts(capsys: pytest.CaptureFixture[str]) -> None:
    def failing(exc: BaseException) -> Callable[[argparse.Namespace], int]:
        def command(_args: argparse.Namespace) -> int:
            raise exc

        return command

    args = argparse.Namespace()
    assert run(failing(ControlError("the daemon said no")), args) == EXIT_FAIL
    assert capsys.readouterr().err == "dockyard: the daemon said no\n"
    problems = [Problem("a.toml", "apps.x", "bad"), Problem("a.toml", "", "worse")]
    assert run(failing(ConfigError(problems)), args) == EXIT_FAIL
    assert capsys.readouterr().err == "error: a.toml: apps.x: bad\nerror: a.toml: worse\n"
    assert run(failing(KeyboardInterrupt()), args) == EXIT_INTERRUPTED
    assert run(lambda _args: 7, args) == 7
    with pytest.raises(ZeroDivisionError):  # a bug in dockyard stays a traceback
        run(failing(ZeroDivisionError()), args)


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def test_the_index_of_commands_is_what_the_modules_declare() -> None:
    """`dockyard COMMAND` builds only COMMAND's module's parser (main.DECLARED_IN): the index
    must name every command, each in the module that declares it."""
    everything = _commands(build_parser())
    assert everything == set(DECLARED_IN) | {"serve", "validate"}
    for key in REGISTRARS:
        names = {c for c, k in DECLARED_IN.items() if k == key}
        assert names, key
        assert _commands(build_parser(min(names))) == names | {"serve", "validate"}, key
    assert _commands(build_parser("nosuch")) == everything


def test_commands_find_the_control_socket_by_the_loaders_rule(tmp_path: Path) -> None:
    """The CLI reads only `[server] state_dir` and `control_socket`; where it looks must be
    where the daemon (the full loader) binds, in every case."""
    cases = {
        "none.toml": "",
        "state.toml": '[server]\nstate_dir = "st"\n',
        "abs.toml": f'[server]\nstate_dir = "{tmp_path / "abs"}"\n',
        "sock.toml": '[server]\nstate_dir = "st"\ncontrol_socket = "run/c.sock"\n',
    }
    for name, text in cases.items():
        path = tmp_path / "sub" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + '[apps.web]\nimage = "x:1"\n')
        assert control_socket(path) == load_config(path).server.control_socket, name


def test_a_bad_socket_setting_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text("[server]\nstate_dir = 3\n")
    with pytest.raises(ConfigError) as got:
        control_socket(path)
    assert str(got.value.problems[0]) == f"{path}: server.state_dir: must be a string, got 3"
    path.write_text("server = 1\n")
    with pytest.raises(ConfigError, match="server: must be a table"):
        control_socket(path)
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        control_socket(path)


def test_the_command_word_and_who_yields_the_cpu() -> None:
    assert command_of(["-c", "x.toml", "deploy", "web"]) == "deploy"
    assert command_of(["--config", "serve", "serve"]) == "serve"
    assert command_of(["--help"]) is None
    probe = ("import os\n"
             "from supervisor.base import priority\n"
             "from supervisor.cli.entry import yield_cpu\n"
             "base = os.nice(0)\n"
             "yield_cpu('serve'); serving = os.nice(0) - base\n"  # lowered until it serves...
             "priority.restore(); restored = os.nice(0) - base\n"  # ...then taken back
             "yield_cpu('loadtest'); kept = os.nice(0) - base\n"
             "yield_cpu('deploy'); print(serving, restored, kept, os.nice(0) - base)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True)
    start = min(START_NICE, 19 - os.nice(0)) if os.geteuid() == 0 else 0  # only where it can restore
    want = min(CLI_NICE, 19 - os.nice(0))  # a nice value stops at 19
    assert done.stdout.split() == [str(start), "0", "0", str(want)], done


def test_the_command_leaves_without_teardown_but_with_its_output_and_exit_code(tmp_path: Path) -> None:
    """`entry()` ends with os._exit (no module teardown after a deploy's swap): what the command
    printed must still reach a pipe, and its exit code the caller."""
    config = tmp_path / "dockyard.toml"
    config.write_text(f"[server]\nstate_dir = \"{tmp_path}\"\n[apps.web]\nimage = \"x:1\"\n")
    ok = subprocess.run([sys.executable, "-m", "supervisor.cli", "validate", "-c", str(config)],
                        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ok.returncode == 0 and "OK, 1 app" in ok.stdout and "app web" in ok.stdout, ok
    usage = subprocess.run([sys.executable, "-m", "supervisor.cli", "nosuch"],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert usage.returncode == 2 and "invalid choice: 'nosuch'" in usage.stderr
    down = subprocess.run([sys.executable, "-m", "supervisor.cli", "status", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert down.returncode != 0 and "no dockyard daemon answers" in down.stderr
