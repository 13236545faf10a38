"""The live dashboard (docs/dashboard.md): read-only pages of the apps, their releases,
containers, routes, cron and traffic, with deploys drawn on a live chart.

- `data.py`: the views (plain values) of the supervisor, scheduler, series and event bus
- `pages.py`: the server-rendered pages, the releases fragment and the chart's JSON
- `stream.py`: the server-sent events that keep the pages live
- `site.py`: the aiohttp application, its security headers and its listener
- `templates/`, `static/`: HTML templates, the stylesheet, the page script and the chart
"""

from __future__ import annotations

from supervisor.api.dashboard.data import Sources
from supervisor.api.dashboard.site import Dashboard, bound_port, make_app, serve, start

__all__ = ["Dashboard", "Sources", "bound_port", "make_app", "serve", "start"]
