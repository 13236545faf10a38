"""`dockyard status`: the daemon's uptime and version; per app its release, routes, in-flight
requests, container health, canary, maintenance, policies, TLS and next cron runs.

`status_report` gathers it from the control API (`/v1/status`, `/v1/ps`, `/v1/cron`) into
one dict (what `--json` prints); `render_status` lays it out for a person.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor.cli import canary, render
from supervisor.model.errors import ControlError


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
