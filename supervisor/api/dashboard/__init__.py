"""The live dashboard (docs/dashboard.md): read-only pages of the apps, their releases,
containers, routes, cron and traffic, with deploys drawn on a live chart.

- `data.py`: the views (plain values) of the supervisor, scheduler, series and event bus
- `pages.py`: the server-rendered pages, the releases fragment and the chart's JSON
- `stream.py`: the server-sent events that keep the pages live
- `canary.py`: a running canary's two releases side by side
- `render.py`: HTML escaping, figures as text, tables, the templates
- `site.py`: the aiohttp application, its security headers, who may read (`Access`), its listeners
- `edge.py`: the proxy's route for `dashboard_host` (basic auth, TLS redirect, the proxy's token)
- `templates/`, `static/`: HTML templates, the stylesheet, the page script and the chart
"""

from __future__ import annotations

from supervisor.api.dashboard.data import Sources
from supervisor.api.dashboard.site import Access, Dashboard, make_app, serve

__all__ = ["Access", "Dashboard", "Sources", "make_app", "serve"]
