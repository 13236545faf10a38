"""A running canary on the app page: the serving release and the canary side by side.

Per release: its share of new clients, request rate, 5xx rate, p50 and p99 of the last minute
(the series sampler keeps a ring per release while the canary runs: `releases_of` tells it
which), and the figures the canary is judged on since it began (requests, error rate, p99, from
the CanaryBoard that deploy/canary.py updates). The page gets the table server-rendered, then
every second in the app stream's `state` event; series.json carries the values and each
release's points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supervisor.api.dashboard.data import Sources
from supervisor.api.dashboard.render import h, ms, rate, table
from supervisor.deploy.supervisor import Supervisor


def releases_of(sup: Supervisor) -> dict[str, tuple[str, str]]:
    """app -> (serving release, canary release) of every canary running now."""
    return {app: (str(line["serving_release"]), str(line["release"]))
            for app, line in list(sup.ctx.canaries.live.items())}


def roles(src: Sources, app: str) -> dict[str, str]:
    """{"serving": release, "canary": release} while the app's canary runs, else {}."""
    pair = releases_of(src.supervisor).get(app)
    return {"serving": pair[0], "canary": pair[1]} if pair else {}


def points(src: Sources, app: str, since: float | None) -> dict[str, dict[str, list[float | None]]]:
    """Each release's points after `since` while the app's canary runs (the chart's lines)."""
    return {r: src.series.points(app, since, release=r) for r in roles(src, app).values()}


def view(src: Sources, app: str, points: bool = False) -> dict[str, Any] | None:
    """The app's canary as plain values; None when none runs. With `points`, each release's
    points of its series too (the chart's JSON)."""
    line = src.supervisor.ctx.canaries.live.get(app)
    if not line:
        return None
    percent = float(line.get("percent", 0.0))
    rows = []
    for role, release, share in (("serving", line["serving_release"], 100.0 - percent),
                                 ("canary", line["release"], percent)):
        judged: Mapping[str, Any] = line.get(role) or {}
        row: dict[str, Any] = {
            "role": role, "release": release, "share": share,
            **src.series.last_minute(app, str(release)),
            "requests": judged.get("requests", 0), "error_rate": judged.get("error_rate", 0.0),
            "p99_ms": judged.get("p99_ms"),
        }
        if points:
            row["points"] = src.series.points(app, release=str(release))
        rows.append(row)
    return {"release": line["release"], "serving_release": line["serving_release"], "percent": percent,
            "elapsed": line.get("elapsed"), "for": line.get("for"), "releases": rows}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f} %"


def html(v: Mapping[str, Any] | None) -> str:
    """The side-by-side table (escaped here), or a line saying no canary runs."""
    if v is None:
        return '<p class="empty">no canary running</p>'
    serving, fresh = v["releases"]
    heads = ["", f'serving r{serving["release"]}', f'canary r{fresh["release"]}']
    lines = [
        ("share of new clients", lambda r: f'{r["share"]:g} %'),
        ("req/s (last minute)", lambda r: rate(r["rate"])),
        ("5xx/s (last minute)", lambda r: rate(r["errors"])),
        ("p50 (last minute)", lambda r: ms(r["p50"])),
        ("p99 (last minute)", lambda r: ms(r["p99"])),
        ("requests since the canary began", lambda r: str(r["requests"])),
        ("error rate since it began", lambda r: _percent(r["error_rate"])),
    ]
    rows = [[h(label)] + [f'<span data-role="{h(r["role"])}">{h(text(r))}</span>' for r in (serving, fresh)]
            for label, text in lines]
    elapsed = v["elapsed"] if v["elapsed"] is not None else 0
    caption = (f'<p class="sub">canary r{h(v["release"])} against r{h(v["serving_release"])}: '
               f'{h(f"{elapsed:g}")} s of {h(v["for"])} s</p>')
    return caption + table(heads, rows, id="canary-table")
