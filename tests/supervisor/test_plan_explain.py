"""`dockyard plan` (the changed keys, empty or not, its rendering) and `dockyard routes
--explain` (exact and wildcard hosts, prefixes, why none), without Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.cli.views import render_explain, render_plan
from supervisor.deploy.explain import Route, explain, split_url
from supervisor.deploy.reconcile import plan
from supervisor.model.errors import DockyardError
from tests.utils import make_config


def app(image: str = "a:1", **extra: Any) -> dict[str, Any]:
    return {"image": image, "hosts": ["a.test"], **extra}


def test_plan_names_the_changed_keys_never_values(tmp_path: Path) -> None:
    old = make_config(tmp_path, {"a": app(env={"TOKEN": "old"}), "b": app(hosts=["b.test"])})
    new = make_config(tmp_path, {"a": app("a:2", env={"TOKEN": "new-secret"}),
                                 "b": app(hosts=["b2.test"], processes={"web": {"scale": 2}})})
    p = plan(old, new)
    assert dict(p.keys) == {"a": ("image", "env"), "b": ("hosts", "processes")}
    assert not p.empty
    text = render_plan(p.as_dict())
    assert text.splitlines() == [
        "changed   a (image, env): redeploy",
        "scaled    b (hosts, processes): scale",
        "rerouted  b (hosts, processes): new routes, no container touched",
    ]
    assert "new-secret" not in text and "new-secret" not in str(p.as_dict())


def test_plan_of_the_same_file_is_empty(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"a": app()})
    p = plan(config, config)
    assert p.empty and render_plan(p.as_dict()) == "no changes"
    moved = make_config(tmp_path, {"a": app()}, listen="127.0.0.1:9999")
    assert not plan(config, moved).empty
    assert render_plan(plan(config, moved).as_dict()) == "needs a daemon restart to apply: listen"


ROUTES = [
    Route("site", ("example.com",), "/", 3, ("127.0.0.1:1",)),
    Route("api", ("example.com",), "/api", 5, ("127.0.0.1:2", "127.0.0.1:3")),
    Route("tenants", ("*.example.com",), "/", None, ()),
    Route("deep", ("*.eu.example.com",), "/", 1, ("127.0.0.1:4",), maintenance=True),
]


def test_explain_exact_host_longest_prefix() -> None:
    result = explain(ROUTES, "http://Example.COM:8080/api/users?x=1")
    assert (result["host"], result["path"], result["app"], result["release"]) == (
        "example.com", "/api/users", "api", 5)
    assert result["targets"] == ["127.0.0.1:2", "127.0.0.1:3"]
    assert result["match"] == "host 'example.com' (exact), path prefix '/api'"
    assert explain(ROUTES, "example.com/apiary")["app"] == "site"  # /apiary is not under /api
    assert explain(ROUTES, "http://example.com/%61pi/x")["app"] == "api"  # routing's normal path


def test_explain_wildcards_longest_suffix_first_and_why_none() -> None:
    shop = explain(ROUTES, "http://shop.example.com/")
    assert shop["app"] == "tenants" and shop["steps"][0] == "no app names the host 'shop.example.com' exactly"
    assert "has no serving targets: the proxy answers 503" in shop["reason"]
    deep = explain(ROUTES, "http://x.eu.example.com/")
    assert deep["app"] == "deep" and "maintenance" in deep["reason"]
    none = explain(ROUTES, "http://other.test/")
    assert none["app"] is None and none["reason"] == (
        "no route matches host 'other.test' and path '/': the proxy answers 404")
    bare = explain(ROUTES, "http://example.com.evil/")
    assert bare["app"] is None
    text = render_explain(explain(ROUTES, "http://example.com/api"))
    assert "app       api" in text and "release   5" in text


def test_explain_refuses_what_is_not_a_url() -> None:
    assert split_url("example.com") == ("example.com", "/")
    with pytest.raises(DockyardError, match="not a URL"):
        split_url("http:///nohost")
