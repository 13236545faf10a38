"""`dockyard routes --explain URL`: which route would serve a URL, and why, or why none.

Pure: it builds the proxy's own `RouteTable` from the apps' routes and walks it as
`RouteTable.lookup` does (exact host first, then the longest wildcard suffix; within a host the
longest path prefix), so the explanation and the proxy cannot disagree about the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from proxy.routes import RouteTable, Service, make_service, normal_path, normalize_host
from supervisor.model.errors import DockyardError


@dataclass(frozen=True, slots=True)
class Route:
    """An app's routes and what serves them now."""

    app: str
    hosts: tuple[str, ...]
    path_prefix: str
    release: int | None = None
    targets: tuple[str, ...] = ()
    maintenance: bool = False


def split_url(url: str) -> tuple[str, str]:
    """(host, path) of `url`; `example.com/x` is read as `http://example.com/x`."""
    text = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(text)
        host = parts.netloc.rpartition("@")[2]
    except ValueError as exc:
        raise DockyardError(f"not a URL: {url!r} ({exc})") from None
    if not host:
        raise DockyardError(f"not a URL: {url!r} (expected http://HOST/PATH)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return normalize_host(host), path


def explain(routes: Sequence[Route], url: str) -> dict[str, Any]:
    host, raw_path = split_url(url)
    path = normal_path(raw_path.partition("?")[0]) or "/"
    by_app = {r.app: r for r in routes}
    table = RouteTable.build({
        r.app: make_service(r.app, r.hosts, [], r.path_prefix) for r in routes if r.hosts
    })
    steps: list[str] = []
    found: Service | None = None
    how = ""
    exact = table.exact.get(host)
    if exact is None:
        steps.append(f"no app names the host {host!r} exactly")
    else:
        found, how = _within(exact, path, f"host {host!r} (exact)", steps)
    if found is None:
        for suffix in table.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                found, how = _within(table.wildcard[suffix], path, f"wildcard '*{suffix}'", steps)
                if found is not None:
                    break
            else:
                steps.append(f"wildcard '*{suffix}' does not cover {host!r}")
    result: dict[str, Any] = {"url": url, "host": host, "path": path, "steps": steps}
    if found is None:
        result.update(app=None, reason=f"no route matches host {host!r} and path {path!r}: "
                      "the proxy answers 404")
        return result
    route = by_app[found.app]
    result.update(app=route.app, route={"hosts": list(route.hosts), "path_prefix": route.path_prefix},
                  match=how, release=route.release, targets=list(route.targets),
                  maintenance=route.maintenance)
    if route.maintenance:
        result["reason"] = f"app {route.app!r} is in maintenance mode: the proxy answers 503"
    elif not route.targets:
        result["reason"] = f"app {route.app!r} has no serving targets: the proxy answers 503"
    else:
        result["reason"] = f"served by app {route.app!r} ({how})"
    return result


def _within(services: Sequence[Service], path: str, where: str, steps: list[str]) -> tuple[Service | None, str]:
    """The first (longest) prefix of `services` that matches `path`."""
    for svc in services:
        if svc.matches_path(path):
            how = f"{where}, path prefix {svc.path_prefix!r}"
            steps.append(f"{where}: app {svc.app!r} matches with path prefix {svc.path_prefix!r}"
                         + (" (the longest that matches)" if len(services) > 1 else ""))
            return svc, how
        steps.append(f"{where}: app {svc.app!r} has path prefix {svc.path_prefix!r}, "
                     f"which {path!r} is not under")
    return None, ""
