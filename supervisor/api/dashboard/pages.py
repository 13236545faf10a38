"""The dashboard's pages: server-rendered HTML from the views of data.py, and the JSON and
fragments the page's script fetches. Every value goes through `h()` (HTML escaping); the
templates are `string.Template` files in templates/, read from the package (also inside the
.pyz) by `importlib.resources`.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any

import orjson
from aiohttp import web

from supervisor.api.dashboard import data
from supervisor.api.dashboard.data import Sources
from supervisor.model.errors import UnknownApp
from supervisor.ops.series import WINDOW

SOURCES_KEY = web.AppKey("dashboard_sources", Sources)


# rendering helpers ----------------------------------------------------------------------------


@cache
def template(name: str) -> Template:
    text = resources.files(__package__).joinpath("templates", name).read_text("utf-8")
    return Template(text)


def h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def clock(stamp: float | str | None) -> str:
    """A time as `YYYY-MM-DD HH:MM:SSZ` (UTC); ISO strings are accepted too."""
    if stamp is None:
        return "–"
    if isinstance(stamp, str):
        try:
            when = dt.datetime.fromisoformat(stamp).astimezone(dt.UTC)
        except ValueError:
            return stamp
    else:
        when = dt.datetime.fromtimestamp(stamp, dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    millis = seconds * 1000
    return f"{millis:.1f} ms" if millis < 100 else f"{millis:.0f} ms"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], id: str = "", empty: str = "none") -> str:
    """A table of already-escaped cells."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{h(empty)}</p>'
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    ident = f' id="{h(id)}"' if id else ""
    return f'<table class="grid"{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(title: str, body: str, *, page_name: str, app: str = "", status: int = 200) -> web.Response:
    nav = '<a href="/">apps</a>' + (f' / <a href="/apps/{h(app)}">{h(app)}</a>' if app else "")
    text = template("layout.html").substitute(
        title=h(title), page=h(page_name), app=h(app), nav=nav, body=body,
        generated=h(clock(time.time())),
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def json(value: Any) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def _sources(request: web.Request) -> Sources:
    return request.app[SOURCES_KEY]


# the overview ---------------------------------------------------------------------------------


def overview_row(row: Mapping[str, Any]) -> str:
    app = row["app"]
    hosts = ", ".join(h(x) for x in row["hosts"]) or '<span class="dim">none</span>'
    if row["path_prefix"] != "/":
        hosts += f' <span class="dim">{h(row["path_prefix"])}</span>'
    health = f'{row["running"]} / {row["healthy"]} / {row["containers"]}'
    ok = row["containers"] > 0 and row["healthy"] == row["containers"]
    tls = row["tls"]
    tls_text = (tls["mode"] if tls["mode"] == "off" else
                f'{tls["mode"]}: {tls["state"] or "pending"}, expires {clock(tls["expires"])}')
    release = "–" if row["release"] is None else f'r{row["release"]}'
    busy = f' <span class="busy">{h(row["busy"])}</span>' if row["busy"] else ""
    cells = [
        f'<a href="/apps/{h(app)}">{h(app)}</a>',
        f'<span data-field="release">{h(release)}</span><span data-field="busy">{busy}</span>',
        hosts,
        f'<span class="{"ok" if ok else "bad"}">{h(health)}</span>',
        f'<span data-field="inflight">{h(row["inflight"])}</span>',
        f'<span data-field="rate">{h(rate(row["minute_rate"]))}</span>',
        f'<span data-field="errors">{h(rate(row["minute_errors"]))}</span>',
        f'<span data-field="p50">{h(ms(row["minute_p50"]))}</span>',
        f'<span data-field="p99">{h(ms(row["minute_p99"]))}</span>',
        h(clock(row["next_cron"])) if row["next_cron"] else "–",
        h(tls_text),
    ]
    return f'<tr data-app="{h(app)}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


async def overview(request: web.Request) -> web.Response:
    rows = await data.overview(_sources(request))
    body = template("overview.html").substitute(
        rows="\n".join(overview_row(r) for r in rows) or '<tr><td colspan="11">no apps</td></tr>'
    )
    return page("apps", body, page_name="overview")


# one app ----------------------------------------------------------------------------------------


def releases_html(rows: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in rows:
        steps = " ".join(
            f'<span class="step {"ok" if s["ok"] else "bad"}">{h(s["step"])} {h(s["seconds"])}s</span>'
            for s in r["steps"]
        )
        took = (f'{r["finished_at"] - r["created_at"]:.1f}s'
                if r["finished_at"] is not None else "running")
        out.append([
            f'r{h(r["number"])}', h(r["image"]), h(r["kind"]),
            f'<span class="status-{h(r["status"])}">{h(r["status"])}</span>',
            h(clock(r["created_at"])), h(took), steps or "–",
            f'<span class="reason">{h(r["reason"])}</span>' if r["reason"] else "",
        ])
    return table(["release", "image", "kind", "status", "started", "took", "steps", "reason"],
                 out, id="release-table", empty="no releases yet")


def containers_html(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["container", "process", "release", "status", "serving", "healthy", "target", "in-flight",
         "restarts", "last exit"],
        ([h(c["name"]), h(c["process"]), f'r{h(c["release"])}', h(c["status"]),
          "yes" if c["serving"] else "no",
          f'<span class="{"ok" if c["healthy"] else "bad"}">{"yes" if c["healthy"] else "no"}</span>',
          h(c["target"] or "–"), h(c["inflight"]), h(c["restarts"]),
          h("–" if c["exit_code"] is None else c["exit_code"])] for c in rows),
        empty="no containers",
    )


def routes_html(routes: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["hosts", "path prefix", "release", "targets"],
        ([", ".join(h(x) for x in r["hosts"]) or "none", h(r["path_prefix"]),
          h("–" if r["release"] is None else f'r{r["release"]}'),
          ", ".join(h(t) for t in r["targets"]) or "none"] for r in routes),
        empty="no routes",
    )


def spec_html(spec: Mapping[str, Any]) -> str:
    """The app's policies: what shapes its traffic and its deploys (never its env)."""
    items = [
        ("configured image", spec["image"] or f'build {spec["build"]}'),
        ("port", spec["port"]), ("network", spec["network"]), ("balance", spec["balance"]),
        ("processes", ", ".join(f"{k}={v}" for k, v in spec["processes"].items())),
        ("retire_after", f'{spec["retire_after"]:g}s'), ("drain_timeout", f'{spec["drain_timeout"]:g}s'),
        ("tls", spec["tls"] + (", redirect" if spec["tls_redirect"] else "")
         + (f', hsts {spec["hsts"]}' if spec["hsts"] else "")),
        ("checks", "; ".join(f'{c["process"]} {c["type"]} {c["name"]}' for c in spec["checks"]) or
         "none (the default wait)"),
    ]
    return '<dl class="spec">' + "".join(f"<dt>{h(k)}</dt><dd>{h(v)}</dd>" for k, v in items) + "</dl>"


def cron_html(tasks: Sequence[Mapping[str, Any]]) -> str:
    if not tasks:
        return '<p class="empty">no cron tasks</p>'
    out = []
    for t in tasks:
        runs = "".join(
            f'<li><span class="status-{h(r["status"])}">{h(r["status"])}</span> '
            f'exit {h("–" if r["exit_code"] is None else r["exit_code"])}, {h(clock(r["started"]))}'
            f'{" (manual)" if r["manual"] else ""}<pre>{h(r["output"])}</pre></li>'
            for r in t["runs"]
        ) or '<li class="empty">no runs yet</li>'
        state = "suspended" if t["suspended"] else f'next {clock(t["next_run"])}'
        out.append(
            f'<div class="cron"><h3>{h(t["id"])} <code>{h(t["schedule"])}</code> '
            f'<span class="dim">{h(state)}{", running" if t["running"] else ""}</span></h3>'
            f'<p><code>{h(t["command"])}</code></p><ol class="runs">{runs}</ol></div>'
        )
    return "".join(out)


def marker_html(m: Mapping[str, Any]) -> str:
    reason = f' <span class="reason">{h(m["reason"])}</span>' if m.get("reason") else ""
    return (f'<li class="m-{h(m["kind"])}" data-kind="{h(m["kind"])}" '
            f'data-release="{h(m.get("release") or "")}">{h(clock(m["t"]))} {h(m["label"])}{reason}</li>')


def event_html(e: Mapping[str, Any]) -> str:
    """One deploy stream line (the script renders live ones the same way)."""
    name = e.get("event")
    if name == "step":
        text = f'{e.get("step")} {e.get("status")}'
        if e.get("seconds") is not None:
            text += f' ({e["seconds"]}s)'
        if e.get("error"):
            text += f': {e["error"]}'
        cls = {"failed": "bad", "done": "ok"}.get(str(e.get("status")), "")
    elif name == "deploying":
        text, cls = f'{e.get("kind", "deploy")} of r{e.get("release")}: {e.get("image", "")}', ""
    elif name == "deployed":
        text, cls = f'deployed r{e.get("release")} in {e.get("seconds")}s', "ok"
    elif name == "failed":
        text, cls = f'failed r{e.get("release")}: {e.get("reason")}', "bad"
    elif name == "retired":
        text, cls = f'retired {e.get("containers")} old container(s)', ""
    else:
        text, cls = str(name), ""
    return f'<li class="{cls}" data-event="{h(name)}">{h(clock(e.get("time")))} {h(text)}</li>'


def minute_text(minute: Mapping[str, float | None]) -> str:
    return (f'last minute: {rate(minute["rate"])} req/s, {rate(minute["errors"])} 5xx/s, '
            f'p50 {ms(minute["p50"])}, p99 {ms(minute["p99"])}')


async def app_page(request: web.Request) -> web.Response:
    name = request.match_info["app"]
    try:
        view = await data.app_view(_sources(request), name)
    except UnknownApp:
        body = template("notfound.html").substitute(message=h(f"No app named {name!r}."))
        return page("not found", body, page_name="notfound", status=404)
    body = template("app.html").substitute(
        app=h(name),
        release=h("–" if view["release"] is None else f'r{view["release"]}'),
        busy=h(f'{view["busy"]} running' if view["busy"] else ""),
        minute=h(minute_text(view["minute"])),
        markers="".join(marker_html(m) for m in view["markers"]),
        deploy="".join(event_html(e) for e in view["deploy_events"]) or '<li class="empty">none seen since the daemon started</li>',
        releases=releases_html(view["releases"]),
        containers=containers_html(view["containers"]),
        routes=routes_html(view["routes"]),
        spec=spec_html(view["spec"]),
        cron=cron_html(view["cron"]),
    )
    return page(name, body, page_name="app", app=name)


async def parts(request: web.Request) -> web.Response:
    """The releases, containers and routes sections as HTML (escaped here): the page swaps
    them in when a deploy starts, swaps, ends or retires containers."""
    src = _sources(request)
    name = request.match_info["app"]
    src.supervisor.app(name)
    return json({
        "releases": releases_html(data.release_rows(src, name)),
        "containers": containers_html(data.container_rows(await data.containers_of(src.supervisor, name))),
        "routes": routes_html([r for r in src.supervisor.route_rows() if r["app"] == name]),
    })


async def series_json(request: web.Request) -> web.Response:
    """The chart's history: the last 15 minutes of points and the markers in that time."""
    src = _sources(request)
    name = request.match_info["app"]
    src.supervisor.app(name)
    now = time.time()
    secrets = data.secrets_of(src.supervisor)
    return json({
        "app": name,
        "now": now,
        "window": WINDOW,
        "points": src.series.points(name),
        "markers": data.markers(src.events, name, now - WINDOW, secrets),
    })


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", overview),
        web.get("/apps/{app}", app_page),
        web.get("/apps/{app}/parts", parts),
        web.get("/apps/{app}/series.json", series_json),
    ]
