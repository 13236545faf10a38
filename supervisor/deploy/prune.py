"""Retention: after each successful deploy, the app's history older than `keep_releases` goes.

Kept: the app's `keep_releases` newest releases (`[apps.X] keep_releases`, else `[server]
keep_releases`, default 5 like Kamal's `retain_containers`), and always the serving release
and the rollback target (`StateStore.prune_releases`). Pruned: the older release rows, their
stored Procfile/app.json texts, and their images, unless the image is still named by a kept
release of any app or by any app's `image =` in the config, or any container on the engine
uses it (another app's, a one-off, a container dockyard did not make: `Runtime.remove_image`
checks, and never forces). A failure here is logged; the deploy already succeeded.
"""

from __future__ import annotations

import logging

from supervisor.deploy.context import Context
from supervisor.model.spec import AppSpec

log = logging.getLogger("dockyard.supervisor")


def keep_of(ctx: Context, app: AppSpec) -> int:
    return app.keep_releases or ctx.apps.config.server.keep_releases


async def prune(ctx: Context, app: AppSpec) -> list[str]:
    """Prune `app`'s old releases and their images; return the images removed."""
    try:
        pruned = ctx.state.prune_releases(app.name, keep_of(ctx, app))
        if not pruned:
            return []
        named = ctx.state.images() | {a.image for a in ctx.apps.config.apps.values() if a.image}
        removed = []
        for image in sorted({r.image for r in pruned} - named):
            if await ctx.runtime.remove_image(image):
                removed.append(image)
        log.info("pruned app=%s releases=%s images=%s", app.name,
                 ",".join(str(r.number) for r in pruned), ",".join(removed) or "-")
        return removed
    except Exception as exc:  # retention never fails a deploy
        log.warning("prune failed app=%s error=%r", app.name, exc)
        return []
