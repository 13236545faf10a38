"""What the dashboard shows, as plain JSON-able values: read-only views of the supervisor, the
scheduler, the proxy's series and the event bus. Nothing here changes anything.

Env values never leave this module: the views name no env at all, and free text that an app
or a check produced (failure reasons, cron output) has every env value of every app (of 4
characters or more) replaced by `[redacted]`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler import Scheduler
from supervisor.config.certs import load_cert, not_after
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import DockyardError
from supervisor.model.spec import AppSpec
from supervisor.ops.events import Event, EventBus
from supervisor.ops.series import WINDOW, Sampler

log = logging.getLogger("dockyard.supervisor")
REDACTED = "[redacted]"
MIN_SECRET = 4  # shorter env values ("1", "on") are not redacted: they would mangle every text
OUTPUT_TAIL = 12  # lines of a cron run's output shown


@dataclass(frozen=True)
class Sources:
    """Everything the dashboard reads; the daemon builds one."""

    supervisor: Supervisor
    series: Sampler
    events: EventBus
    scheduler: Callable[[], Scheduler | None] = lambda: None
    tls_status: Callable[[], Mapping[str, Mapping[str, Any]]] = dict


# redaction ----------------------------------------------------------------------------------


def secrets_of(sup: Supervisor) -> list[str]:
    values = {v for app in sup.config.apps.values() for v in app.env.values() if len(v) >= MIN_SECRET}
    return sorted(values, key=len, reverse=True)  # longest first: a value inside another goes too


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# markers: a deploy's start, swap and end drawn on the chart ---------------------------------


def marker_of(event: Event, secrets: Iterable[str] = ()) -> dict[str, Any] | None:
    """The chart marker an event stands for, or None: start, swap, failed, retire."""
    name = event.get("event")
    base = {"t": event.get("time", time.time()), "release": event.get("release")}
    if name == "deploying":
        return {**base, "kind": "start", "label": f"start r{event.get('release')}",
                "deploy": event.get("kind", "deploy")}
    if name == "step" and event.get("step") == "swap" and event.get("status") == "done":
        return {**base, "kind": "swap", "label": f"swap r{event.get('release')}"}
    if name == "failed":
        return {**base, "kind": "failed", "label": f"failed r{event.get('release')}",
                "reason": redact(str(event.get("reason", "")), secrets)}
    if name == "retired":
        return {**base, "kind": "retire", "release": None,
                "label": f"retired {event.get('containers', 0)}"}
    return None


def markers(events: EventBus, app: str, since: float, secrets: Iterable[str] = ()) -> list[dict[str, Any]]:
    out = []
    for event in events.recent(app, since):
        marker = marker_of(event, secrets)
        if marker is not None:
            out.append(marker)
    return out


def public_event(event: Event, secrets: Iterable[str]) -> dict[str, Any]:
    """A deploy event as the page gets it: its own fields, free text redacted."""
    out: dict[str, Any] = {
        k: v for k, v in event.items() if isinstance(v, str | int | float | bool | type(None))
    }
    for key in ("reason", "error"):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = redact(value, secrets)
    if isinstance(event.get("warnings"), list):
        out["warnings"] = [redact(str(w), secrets) for w in event["warnings"]]
    return out


# the overview ---------------------------------------------------------------------------------


async def containers_of(sup: Supervisor, name: str | None = None) -> list[dict[str, Any]]:
    """`Supervisor.ps()`, or no rows when the engine does not answer (the page still shows
    everything else; the log has the error)."""
    try:
        return await sup.ps(name)
    except Exception as exc:  # noqa: BLE001 - a Docker hiccup must not take the dashboard down
        log.warning("dashboard: cannot list containers error=%r", exc)
        return []


async def overview(src: Sources) -> list[dict[str, Any]]:
    """One row per configured app."""
    sup = src.supervisor
    rows_by_app: dict[str, list[dict[str, Any]]] = {}
    for row in await containers_of(sup):
        rows_by_app.setdefault(row["app"], []).append(row)
    busy = sup.busy()
    cron = _cron_rows(src, None)
    tls = src.tls_status()
    out = []
    for name, app in sorted(sup.config.apps.items()):
        serving = sup.serving.get(name)
        containers = rows_by_app.get(name, [])
        live = [c for c in containers if c["serving"]]
        next_runs = sorted(r["next_run"] for r in cron if r["app"] == name and r["next_run"])
        out.append({
            "app": name,
            "release": serving.release if serving else None,
            "hosts": list(app.hosts),
            "path_prefix": app.path_prefix,
            "running": sum(1 for c in live if c["status"] == "running"),
            "healthy": sum(1 for c in live if c["healthy"]),
            "containers": len(live),
            "inflight": sum(c["inflight"] for c in live),
            "busy": busy.get(name),
            "next_cron": next_runs[0] if next_runs else None,
            "tls": _tls_of(app, tls.get(name)),
            **{f"minute_{k}": v for k, v in src.series.last_minute(name).items()},
        })
    return out


def live_overview(src: Sources) -> dict[str, dict[str, Any]]:
    """What the overview refreshes every second (no Docker call): per app its release, busy
    operation, in-flight and the last minute's numbers."""
    sup = src.supervisor
    stats = sup.routes.inflight()
    busy = sup.busy()
    out = {}
    for name in sorted(sup.config.apps):
        serving = sup.serving.get(name)
        targets = sup.ctx.fleet.targets(sup.config.apps[name])
        out[name] = {
            "release": serving.release if serving else None,
            "busy": busy.get(name),
            "inflight": sum(stats.get(t, 0) for t in targets),
            **src.series.last_minute(name),
        }
    return out


def _tls_of(app: AppSpec, status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The app's TLS mode and its certificate's expiry: ACME's status, or the manual file's."""
    if app.tls == "acme" and status:
        return {"mode": app.tls, "state": status.get("state"), "expires": status.get("not_after"),
                "error": status.get("last_error")}
    if app.tls == "manual" and app.tls_cert:
        try:
            expires = not_after(load_cert(Path(app.tls_cert).read_bytes())).isoformat()
        except (OSError, ValueError) as exc:
            return {"mode": app.tls, "state": "unreadable", "expires": None, "error": str(exc)}
        return {"mode": app.tls, "state": "valid", "expires": expires, "error": None}
    return {"mode": app.tls, "state": None, "expires": None, "error": None}


# one app --------------------------------------------------------------------------------------


async def app_view(src: Sources, name: str) -> dict[str, Any]:
    """Everything the app page shows; UnknownApp (404) for an app the config does not define."""
    sup = src.supervisor
    app = sup.app(name)
    secrets = secrets_of(sup)
    serving = sup.serving.get(name)
    since = time.time() - WINDOW
    return {
        "app": name,
        "release": serving.release if serving else None,
        "busy": sup.busy().get(name),
        "spec": {
            "image": app.image,
            "build": app.build,
            "hosts": list(app.hosts),
            "path_prefix": app.path_prefix,
            "port": app.port,
            "network": app.network,
            "balance": app.balance,
            "tls": app.tls,
            "tls_redirect": app.tls_redirect,
            "hsts": app.hsts,
            "retire_after": app.retire_after,
            "drain_timeout": app.drain_timeout,
            "processes": {p.name: p.scale for p in app.processes.values()},
            "checks": [
                {"process": process, "type": c.type, "name": c.name or c.path or "check",
                 "path": c.path, "attempts": c.attempts}
                for process, checks in sorted(app.healthchecks.items()) for c in checks
            ],
        },
        "releases": release_rows(src, name, secrets),
        "containers": container_rows(await containers_of(sup, name)),
        "routes": [r for r in sup.route_rows() if r["app"] == name],
        "cron": _cron_view(src, name, secrets),
        "markers": markers(src.events, name, since, secrets),
        "deploy_events": [public_event(e, secrets) for e in _current_deploy(src.events, name)],
        "minute": src.series.last_minute(name),
    }


def container_rows(ps: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`Supervisor.ps()` rows, only the fields shown."""
    keys = ("name", "id", "process", "release", "status", "serving", "healthy", "target",
            "inflight", "restarts", "exit_code")
    return [{k: row[k] for k in keys} for row in ps]


def release_rows(src: Sources, name: str, secrets: Iterable[str] | None = None,
                 limit: int = 20) -> list[dict[str, Any]]:
    """Newest first: number, image, kind, status, reason (redacted), steps with timings."""
    secrets = secrets_of(src.supervisor) if secrets is None else list(secrets)
    rows = []
    for release in src.supervisor.state.releases(name)[:limit]:
        rows.append({
            "number": release.number,
            "image": release.image,
            "kind": release.kind,
            "status": release.status,
            "reason": redact(release.reason, secrets),
            "steps": [{"step": str(s.get("step")), "seconds": s.get("seconds"), "ok": s.get("ok")}
                      for s in release.steps],
            "created_at": release.created_at,
            "finished_at": release.finished_at,
        })
    return rows


def _current_deploy(events: EventBus, app: str) -> list[Event]:
    """The events of the app's latest deploy (from its `deploying` on), when one was seen."""
    recent = events.recent(app)
    starts = [i for i, e in enumerate(recent) if e.get("event") == "deploying"]
    return recent[starts[-1]:] if starts else []


def _cron_rows(src: Sources, app: str | None) -> list[dict[str, Any]]:
    sched = src.scheduler()
    if sched is None:
        return []
    try:
        return sched.list(app)
    except DockyardError:
        return []
    except Exception as exc:  # noqa: BLE001 - a scheduler error must not take the page down
        log.warning("dashboard: cannot list cron tasks error=%r", exc)
        return []


def _cron_view(src: Sources, app: str, secrets: list[str]) -> list[dict[str, Any]]:
    """The app's cron tasks as deployed (app.json ones included), with the scheduler's next
    run and each task's last runs, their output's tail redacted."""
    sched = src.scheduler()
    live = {row["id"]: row for row in _cron_rows(src, app)}
    out = []
    for task in src.supervisor.app(app).cron:
        row = live.get(task.id, {})
        runs = []
        if sched is not None and row:
            for run in sched.runs(app, task.id, 5):
                tail = "\n".join(run.output.splitlines()[-OUTPUT_TAIL:])
                runs.append({"id": run.id, "status": run.status, "exit_code": run.exit_code,
                             "started": run.started, "ended": run.ended, "manual": run.manual,
                             "output": redact(tail, secrets)})
        out.append({"id": task.id, "schedule": task.schedule, "command": redact(task.command, secrets),
                    "next_run": row.get("next_run"), "suspended": bool(row.get("suspended")),
                    "running": row.get("running", 0), "runs": runs})
    return out
