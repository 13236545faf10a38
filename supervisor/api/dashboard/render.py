"""The dashboard's rendering helpers: HTML escaping, times and figures as text, tables, and
the `string.Template` files of templates/, read from the package (also inside the .pyz) by
`importlib.resources`.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from string import Template


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
