"""Config reload as reconcile: a pure plan from (old, new), then the supervisor carries it out.

`plan(old, new)` sorts every app into one of: added (deploy it), removed (drain and stop it),
changed (anything a container is started with differs: image, env, command, limits, checks,
... -> redeploy that app alone, without downtime), scaled (only process counts differ ->
scale), rerouted (only hosts, path_prefix, balance or TLS settings differ -> new routes and
certificates, no container touched), unchanged. Server-level changes that need a restart are reported, not applied.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from supervisor.deploy.context import Context
from supervisor.deploy.flow import deploy
from supervisor.deploy.scale import scale, stop
from supervisor.model.errors import ConfigError, Problem
from supervisor.model.spec import AppSpec, Config, ProcessSpec

log = logging.getLogger("dockyard.supervisor")
# `canary` only shapes the next deploy: changing it restarts nothing.
ROUTE_FIELDS = ("hosts", "path_prefix", "balance", "tls", "tls_cert", "tls_key", "tls_redirect", "hsts",
                "canary", "error_pages", "policy")
RESTART_ONLY_SERVER_FIELDS = (
    "listen", "state_dir", "control_socket", "instance", "tls_listen", "metrics_listen",
    "dashboard_listen", "dashboard_site",
    "acme_directory", "acme_email",
)


@dataclass(frozen=True, slots=True)
class Plan:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    scaled: tuple[str, ...] = ()
    rerouted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()  # [server] keys that only a restart applies
    keys: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # app -> changed keys

    @property
    def empty(self) -> bool:
        """Nothing would change (what `dockyard plan` exits 0 for)."""
        return not any((self.added, self.removed, self.changed, self.scaled, self.rerouted,
                        self.needs_restart))

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "keys"
        }
        data["keys"] = {app: list(keys) for app, keys in self.keys.items()}
        return data


def changed_keys(a: AppSpec, b: AppSpec) -> tuple[str, ...]:
    """The AppSpec fields that differ (names only: `env`, never a value)."""
    return tuple(f.name for f in dataclasses.fields(AppSpec)
                 if f.compare and getattr(a, f.name) != getattr(b, f.name))


def _without_scale(app: AppSpec) -> AppSpec:
    procs = {n: dataclasses.replace(p, scale=0) for n, p in app.processes.items()}
    return dataclasses.replace(app, processes=MappingProxyType(procs))


def _without_routes(app: AppSpec) -> AppSpec:
    """The app as its containers see it: routes and TLS (the proxy's business) blanked."""
    return dataclasses.replace(app, **{f: getattr(AppSpec(app.name), f) for f in ROUTE_FIELDS})


def _scale_of(app: AppSpec) -> dict[str, int]:
    return {n: p.scale for n, p in app.processes.items()}


def plan(old: Config, new: Config) -> Plan:
    added = tuple(sorted(set(new.apps) - set(old.apps)))
    removed = tuple(sorted(set(old.apps) - set(new.apps)))
    changed, scaled, rerouted, unchanged = [], [], [], []
    keys: dict[str, tuple[str, ...]] = {}
    for name in sorted(set(old.apps) & set(new.apps)):
        a, b = old.apps[name], new.apps[name]
        if a == b:
            unchanged.append(name)
            continue
        keys[name] = changed_keys(a, b)
        a_core, b_core = _without_routes(_without_scale(a)), _without_routes(_without_scale(b))
        if a_core != b_core:
            changed.append(name)
            continue
        if _scale_of(a) != _scale_of(b):
            scaled.append(name)
        if any(getattr(a, f) != getattr(b, f) for f in ROUTE_FIELDS):
            rerouted.append(name)
    needs_restart = tuple(
        f for f in RESTART_ONLY_SERVER_FIELDS if getattr(old.server, f) != getattr(new.server, f)
    )
    if old.proxy != new.proxy:
        needs_restart += ("proxy",)
    return Plan(added, removed, tuple(changed), tuple(scaled), tuple(rerouted),
                tuple(unchanged), needs_restart, MappingProxyType(keys))


async def apply(ctx: Context, new_file: Config) -> dict[str, Any]:
    """Carry out plan(ctx.apps.config, new), both with the apps' repository files merged in (see
    Definitions.effective). The caller validated `new_file` already."""
    new = ctx.apps.effective(new_file)
    the_plan = plan(ctx.apps.config, new)
    old_config = ctx.apps.config
    log.info("reloading plan=%s", the_plan.as_dict())
    results: dict[str, Any] = {"plan": the_plan.as_dict(), "deploys": {}}
    # The whole new route table first, in one assignment: every serving app with its new hosts,
    # prefix and TLS settings on the containers it has now (a changed app's redeploy swaps them
    # later), the removed apps gone. A host can move from one app to another; a conflict the
    # validator let through is refused here before anything changed.
    try:
        stopped = [name for name in new.apps if ctx.state.is_stopped(name)]
        ctx.fleet.reroute(new.apps.values(), the_plan.removed, stopped)
    except ValueError as exc:  # proxy RouteConflictError / InvalidRouteError
        problem = Problem(str(new_file.path), "apps", f"the new routes conflict, nothing changed: {exc}")
        raise ConfigError([problem]) from exc
    for name in the_plan.removed:  # out of the routes already: drain and stop them
        await stop(ctx, name, unrouted=True)
        ctx.state.set_stopped(name, False)  # not `dockyard stop`: added back, it deploys
    ctx.apps.replace(new_file)
    for name in the_plan.scaled:
        await scale(ctx, name, _scale_of(new.apps[name]))
    for name in the_plan.added + the_plan.changed:
        app = new.apps[name]
        if ctx.state.is_stopped(name):
            continue  # `dockyard start` brings it back, with the new definition
        current = ctx.state.current(name)
        image_changed = old_config.apps.get(name) is None or old_config.apps[name].image != app.image
        image = app.image if (image_changed or current is None) else current.image
        if not image:
            continue
        try:
            report = await deploy(ctx, app, image)
            results["deploys"][name] = {"ok": report.ok, "release": report.release, "reason": report.reason}
        except Exception as exc:  # one app's failure must not stop the others
            results["deploys"][name] = {"ok": False, "release": 0, "reason": str(exc)}
    log.info("reloaded results=%s", results["deploys"])
    return results


__all__ = ["Plan", "ProcessSpec", "apply", "plan"]
