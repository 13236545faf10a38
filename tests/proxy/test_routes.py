from __future__ import annotations

import pytest

from proxy import InvalidRouteError, RouteConflictError, RouteTable
from proxy.routes import make_service, normalize_host


def table(*specs: tuple[str, list[str], str]) -> RouteTable:
    t = RouteTable.build({})
    for app, hosts, prefix in specs:
        t = t.with_service(make_service(app, hosts, ["127.0.0.1:1"], prefix))
    return t


def test_normalize_host() -> None:
    assert normalize_host("Example.COM:8080") == "example.com"
    assert normalize_host("example.com.") == "example.com"
    assert normalize_host("[::1]:80") == "[::1]"


def test_exact_wins_over_wildcard_and_longest_wildcard() -> None:
    t = table(("exact", ["a.example.com"], "/"), ("wild", ["*.example.com"], "/"), ("deep", ["*.b.example.com"], "/"))
    assert t.lookup("a.example.com", "/").app == "exact"  # type: ignore[union-attr]
    assert t.lookup("x.example.com", "/").app == "wild"  # type: ignore[union-attr]
    assert t.lookup("x.b.example.com", "/").app == "deep"  # type: ignore[union-attr]
    assert t.lookup("example.com", "/") is None
    assert t.lookup("other.org", "/") is None


def test_longest_prefix_wins() -> None:
    t = table(("root", ["h"], "/"), ("api", ["h"], "/api"), ("v2", ["h"], "/api/v2/"))
    assert t.lookup("h", "/").app == "root"  # type: ignore[union-attr]
    assert t.lookup("h", "/api").app == "api"  # type: ignore[union-attr]
    assert t.lookup("h", "/api/x").app == "api"  # type: ignore[union-attr]
    assert t.lookup("h", "/apix").app == "root"  # type: ignore[union-attr]
    assert t.lookup("h", "/api/v2/users").app == "v2"  # type: ignore[union-attr]


def test_prefix_only_app_falls_through_to_wildcard() -> None:
    t = table(("api", ["a.example.com"], "/api"), ("wild", ["*.example.com"], "/"))
    assert t.lookup("a.example.com", "/api/1").app == "api"  # type: ignore[union-attr]
    assert t.lookup("a.example.com", "/other").app == "wild"  # type: ignore[union-attr]


def test_table_is_immutable_value() -> None:
    t1 = table(("a", ["h"], "/"))
    t2 = t1.without_app("a")
    assert t1.lookup("h", "/") is not None
    assert t2.lookup("h", "/") is None
    with pytest.raises(TypeError):
        t1.exact["x"] = ()  # type: ignore[index]


def test_conflicts_and_invalid_routes() -> None:
    with pytest.raises(RouteConflictError):
        table(("a", ["h"], "/"), ("b", ["H"], "/"))
    with pytest.raises(InvalidRouteError):
        make_service("a", ["h"], ["nope"])
    with pytest.raises(InvalidRouteError):
        make_service("a", ["h"], ["127.0.0.1:1"], balance="random")
    with pytest.raises(InvalidRouteError):
        make_service("a", ["a*.b"], [])
