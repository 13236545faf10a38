"""Day-two commands: `dockyard logs`, `dockyard status` and `dockyard install`.

Handlers return exit codes and raise DockyardError subclasses; `supervisor.cli.exits` turns
those into messages. Wire them in with `add_commands(sub, common, client_factory)`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from supervisor.cli import canary, render
from supervisor.cli.common import ClientFactory, SubParsers, add_command
from supervisor.cli.exits import EXIT_OK
from supervisor.model.errors import ControlError, DockyardError
from supervisor.ops import paths, trust
from supervisor.runtime import applogs

UNIT_NAME = "dockyard.service"
UNIT_DIR = "etc/systemd/system"
CONFIG_DIR = "etc/dockyard"
CONFIG_NAME = "dockyard.toml"
STATE_DIR = "var/lib/dockyard"
BIN_PATH = "usr/local/bin/dockyard"


# logs -------------------------------------------------------------------------------------


def logs(
    client: Any,
    docker: Any,
    app: str,
    *,
    process: str | None = None,
    tail: int | None = applogs.DEFAULT_TAIL,
    follow: bool = False,
    prefix: bool = True,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Print the app's serving containers' logs; the daemon says which containers serve."""
    out = out or sys.stdout
    rows = client.get(f"/v1/ps?app={quote(app, safe='')}")
    sources = applogs.sources_from_ps(rows, process)
    if not sources:
        which = f" of process type {process!r}" if process else ""
        raise applogs.LogsError(f"app {app!r} has no serving containers{which}")
    width = max(len(s.name) for s in sources)
    lines: Iterator[applogs.LogLine] | list[applogs.LogLine]
    lines = applogs.follow(docker, sources, tail, stop) if follow else applogs.read(docker, sources, tail)
    for line in lines:
        out.write(applogs.format_line(line, width, prefix) + "\n")
        if follow:
            out.flush()
    return EXIT_OK


def _docker() -> Any:
    # lazy: the Docker SDK costs ~75 ms to import and only `dockyard logs` needs it here
    import docker
    import docker.errors

    try:
        return docker.from_env(timeout=30)
    except docker.errors.DockerException as exc:
        raise applogs.LogsError(f"cannot reach the Docker engine: {exc}") from exc


def _tail(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of lines or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# status -----------------------------------------------------------------------------------


def _health(serving: Sequence[Mapping[str, Any]], release: int | None) -> str:
    if release is None:
        return "not deployed"
    if not serving:
        return "stopped"
    running = sum(1 for r in serving if r.get("status") == "running")
    state = "healthy" if running == len(serving) else "down" if running == 0 else "degraded"
    return f"{state} ({running}/{len(serving)} running)"


def status_report(client: Any) -> dict[str, Any]:
    """The daemon's status, each app's containers and in-flight requests, and the next cron runs."""
    status = client.get("/v1/status")
    docker = status.get("docker") or {"reachable": True}
    try:
        containers = client.get("/v1/ps")
    except ControlError:  # Docker unreachable: the daemon serves, containers are unknown now
        if docker.get("reachable", True):
            raise
        containers = []
    try:
        cron: list[dict[str, Any]] | None = client.get("/v1/cron")
    except ControlError:  # no scheduler in this daemon
        cron = None
    apps = []
    for row in status.get("apps", []):
        name = row["app"]
        mine = [c for c in containers if c.get("app") == name]
        serving = [c for c in mine if c.get("serving")]
        entry = {
            "app": name,
            "release": row.get("release"),
            "hosts": row.get("hosts", []),
            "path_prefix": row.get("path_prefix", "/"),
            "targets": row.get("targets", []),
            "policies": row.get("policies", {}),
            "inflight": sum(int(c.get("inflight") or 0) for c in mine),
            "health": _health(serving, row.get("release")),
            "maintenance": row.get("maintenance"),
            "restarts": sum(int(c.get("restarts") or 0) for c in serving),
            "containers": [
                {k: c.get(k) for k in ("name", "process", "release", "status", "serving",
                                       "restarts", "inflight", "exit_code")}
                for c in mine
            ],
        }
        if row.get("canary"):  # a canary being watched: its share and figures
            entry["canary"] = row["canary"]
        if cron is not None:
            entry["cron"] = [
                {"id": t["id"], "schedule": t.get("schedule"), "next_run": t.get("next_run"),
                 "suspended": t.get("suspended", False), "running": t.get("running", 0),
                 "last": (t.get("last") or {}).get("status")}
                for t in cron if t.get("app") == name
            ]
        apps.append(entry)
    report = {
        "version": status.get("version"),
        "pid": status.get("pid"),
        "uptime": status.get("uptime"),
        "config": status.get("config"),
        "apps": apps,
        "tls": status.get("tls") or {},
    }
    if status.get("connections"):  # client connections open now, and the limit
        report["connections"] = status["connections"]
    if "docker" in status:  # does the daemon reach Docker? (older daemons do not say)
        report["docker"] = docker
    return report


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{u}" for n, u in parts if n] or ["0s"]
    return "".join(shown[:2])


def _policy_value(value: Any) -> str:
    """A policy setting in one word-ish: lists joined, tables as their keys or size."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(str(v.get("from", v)) if isinstance(v, dict) else str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(str(k) for k in value) or "-"
    return str(value)


def render_status(report: Mapping[str, Any]) -> str:
    lines = [
        f"dockyard {report['version']}  pid {report['pid']}  up {_duration(report['uptime'] or 0)}"
        f"  config {report['config']}"
    ]
    connections = report.get("connections")
    if connections:
        lines.append(f"connections {connections['open']} of {connections['limit']}")
    docker = report.get("docker") or {}
    if not docker.get("reachable", True):
        lines.append(f"docker: unreachable since {time.strftime('%H:%M:%S', time.localtime(docker['since']))}"
                     f" ({docker.get('error') or 'no answer'}); routes keep serving, re-adopting when it answers")
    for app in report["apps"]:
        hosts = ",".join(app["hosts"]) or "(no routes)"
        prefix = "" if app["path_prefix"] == "/" else app["path_prefix"]
        release = f"release {app['release']}" if app["release"] is not None else "no release"
        lines.append("")
        lines.append(f"{app['app']}  {release}  {hosts}{prefix}  in-flight {app['inflight']}"
                     f"  {app['health']}  restarts {app['restarts']}")
        if app.get("canary"):
            c = app["canary"]
            lines.append(f"  canary release {c['release']} at {c['percent']:g}%  {c['elapsed']:g}s of {c['for']:g}s"
                         f"  {canary.line(c)}")
        if app.get("maintenance"):
            mode = app["maintenance"]
            retry = f"  retry-after {mode['retry_after']}s" if mode.get("retry_after") is not None else ""
            lines.append(f"  maintenance on: {mode.get('message') or '(default page)'}{retry}")
        if app.get("policies"):
            lines.append("  policies " + "  ".join(f"{k}={_policy_value(v)}" for k, v in app["policies"].items()))
        if app["containers"]:
            lines.append(render.table(app["containers"], ("name", "process", "release", "status",
                                                          "serving", "restarts", "inflight"),
                                      indent="  "))
        for task in app.get("cron") or []:
            nxt = "suspended" if task["suspended"] else task["next_run"] or "-"
            lines.append(f"  cron {task['id']}  {task['schedule']}  next {nxt}"
                         f"  last {task['last'] or '-'}")
        tls = (report.get("tls") or {}).get(app["app"])
        if tls:
            lines.append("  tls " + "  ".join(f"{k} {v}" for k, v in tls.items() if v is not None))
    return "\n".join(lines)


# install ----------------------------------------------------------------------------------


def resource(name: str) -> bytes:
    """A file of the repository's configs/ directory, from a checkout or from the .pyz."""
    path = paths.CONFIGS / name
    if path.is_file():
        return path.read_bytes()
    loader = globals().get("__loader__")
    get_data = getattr(loader, "get_data", None)
    if get_data is not None:  # inside the zipapp: zipimporter reads "<archive>/configs/NAME"
        try:
            data: bytes = get_data(str(path))
            return data
        except OSError:
            pass
    raise DockyardError(f"configs/{name} not found (run from a checkout or from dockyard.pyz)")


def installed_config(example: str) -> str:
    """The example config with the state under /var/lib/dockyard instead of next to the file."""
    out = []
    for line in example.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "state_dir":
            line = f'state_dir = "/{STATE_DIR}"          # SQLite state; see docs/operations.md'
        elif key == "control_socket":
            line = f'control_socket = "/{STATE_DIR}/control.sock"'
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class InstallReport:
    prefix: Path
    done: list[str] = field(default_factory=list)


def _running_pyz() -> Path | None:
    return paths.running_pyz()


def install(prefix: Path = Path("/"), *, enable: bool = False, binary: bool = True,
            run: Callable[[list[str]], None] | None = None) -> InstallReport:
    """Put the unit file, a config, the state directory (and the binary) under `prefix`."""
    report = InstallReport(prefix)
    unit = prefix / UNIT_DIR / UNIT_NAME
    unit_text = resource(UNIT_NAME)
    unit.parent.mkdir(parents=True, exist_ok=True)
    if unit.exists() and unit.read_bytes() == unit_text:
        report.done.append(f"unchanged {unit}")
    else:
        verb = "updated" if unit.exists() else "created"
        _write(unit, unit_text, 0o644)
        report.done.append(f"{verb} {unit}")

    config = prefix / CONFIG_DIR / CONFIG_NAME
    config.parent.mkdir(parents=True, exist_ok=True)
    if config.exists():
        report.done.append(f"kept {config} (exists)")
    else:
        _write(config, installed_config(resource("example.toml").decode()).encode(), 0o640)
        report.done.append(f"created {config} from configs/example.toml: edit it")

    state = prefix / STATE_DIR
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o700)
    report.done.append(f"ready {state}")

    if binary:
        report.done.append(_install_binary(prefix / BIN_PATH))

    if enable:
        if prefix.resolve() != Path("/"):
            raise DockyardError("--enable only with the real root (no --prefix): it runs systemctl")
        runner = run or _systemctl
        runner(["systemctl", "daemon-reload"])
        runner(["systemctl", "enable", "--now", UNIT_NAME])
        report.done.append(f"enabled and started {UNIT_NAME}")
    return report


def _install_binary(target: Path) -> str:
    pyz = _running_pyz()
    target.parent.mkdir(parents=True, exist_ok=True)
    if pyz is not None:
        if target.resolve() != pyz:
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(pyz, tmp)
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        return f"installed {target} (this dockyard.pyz)"
    if target.exists() or target.is_symlink():
        return f"kept {target} (exists)"
    script = shutil.which("dockyard") or (sys.argv[0] if Path(sys.argv[0]).name == "dockyard" else None)
    if not script:
        return f"skipped {target}: no dockyard script found; install dist/dockyard.pyz there"
    # The root service would run this script, its interpreter and the code it imports.
    problem = trust.code_problem(sys.executable, (0,), prefix=sys.prefix, deep=True) or trust.untrusted(
        [Path(script)], owners=(0,))
    if problem:
        raise DockyardError(
            f"refusing to link {target} to {Path(script).resolve()}: {problem}, so a non-root user "
            "could change what the root service runs; install dist/dockyard.pyz (copied, root-owned) "
            "or use a root-owned checkout and virtualenv")
    target.symlink_to(Path(script).resolve())
    return f"linked {target} -> {Path(script).resolve()}"


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _systemctl(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DockyardError(f"{' '.join(argv)} failed: {exc}") from exc


# commands ---------------------------------------------------------------------------------


def add_commands(sub: SubParsers, common: argparse.ArgumentParser, client_factory: ClientFactory) -> None:
    """Add `logs`, `status` and `install` to `sub` (replaces cli.py's plain `status`)."""

    def cmd_logs(args: argparse.Namespace) -> int:
        try:
            return logs(client_factory(args), _docker(), args.app, process=args.process, tail=args.num,
                        follow=args.follow, prefix=not args.quiet)
        except KeyboardInterrupt:
            return EXIT_OK

    def cmd_status(args: argparse.Namespace) -> int:
        report = status_report(client_factory(args))
        if args.json:
            render.print_json(report)
        else:
            print(render_status(report))
        return EXIT_OK

    def cmd_install(args: argparse.Namespace) -> int:
        try:
            report = install(Path(args.prefix), enable=args.enable, binary=not args.no_binary)
        except OSError as exc:  # not root, a read-only /etc...: one line, not a traceback
            raise DockyardError(f"cannot install: {exc}") from exc
        for line in report.done:
            print(line)
        if not args.enable:
            print(f"next: edit /{CONFIG_DIR}/{CONFIG_NAME}, then "
                  f"`systemctl daemon-reload && systemctl enable --now {UNIT_NAME}`"
                  " (or run `dockyard install --enable`)")
        return EXIT_OK

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        return add_command(sub, common, name, fn, help)

    p = add("logs", cmd_logs, "the logs of an app's serving containers, merged and prefixed")
    p.add_argument("app")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("-p", "--process", metavar="TYPE", help="only this process type (web, worker...)")
    p.add_argument("-n", "--num", type=_tail, default=applogs.DEFAULT_TAIL, metavar="N",
                   help=f"lines per container to start with, or 'all' (default {applogs.DEFAULT_TAIL})")
    p.add_argument("-q", "--quiet", action="store_true", help="no container-name prefix")
    p = add("status", cmd_status, "daemon uptime and version; per app release, routes, "
            "in-flight requests, container health and next cron runs")
    p.add_argument("--json", action="store_true")
    p = add("install", cmd_install, "install the systemd unit, /etc/dockyard/dockyard.toml "
            "and /var/lib/dockyard")
    p.add_argument("--prefix", default="/", metavar="DIR",
                   help="install under DIR instead of / (for packaging and tests)")
    p.add_argument("--enable", action="store_true",
                   help="also run systemctl daemon-reload and enable --now dockyard")
    p.add_argument("--no-binary", action="store_true",
                   help="do not put dockyard at /usr/local/bin/dockyard")
