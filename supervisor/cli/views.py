"""What the CLI prints for `dockyard plan` (what a reload would do) and `dockyard routes
--explain URL` (which route would serve a URL, and why)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PLAN_KEYS = ("added", "removed", "changed", "scaled", "rerouted")


def render_plan(plan: Mapping[str, Any]) -> str:
    """One line per kind of change; the changed keys of each app; `no changes` when none."""
    lines = []
    keys = plan.get("keys") or {}
    for kind in PLAN_KEYS:
        for app in plan.get(kind) or []:
            detail = f" ({', '.join(keys[app])})" if keys.get(app) else ""
            verb = {"added": "deploy", "removed": "drain and stop", "changed": "redeploy",
                    "scaled": "scale", "rerouted": "new routes, no container touched"}[kind]
            lines.append(f"{kind:<9} {app}{detail}: {verb}")
    if plan.get("needs_restart"):
        lines.append(f"needs a daemon restart to apply: {', '.join(plan['needs_restart'])}")
    return "\n".join(lines) if lines else "no changes"


def render_explain(result: Mapping[str, Any]) -> str:
    lines = [f"{result['url']} -> host {result['host']!r}, path {result['path']!r}"]
    lines += [f"  {step}" for step in result["steps"]]
    if result.get("app"):
        route = result["route"]
        lines.append(f"app       {result['app']}")
        lines.append(f"route     hosts {','.join(route['hosts'])}  path_prefix {route['path_prefix']}")
        lines.append(f"matched   {result['match']}")
        release = result.get("release")
        lines.append(f"release   {release if release is not None else '- (not deployed)'}")
        lines.append(f"targets   {', '.join(result['targets']) or '-'}")
    lines.append(result["reason"])
    return "\n".join(lines)
