"""Edge-policy keys of [apps.NAME] (issue #21): parsed into AppSpec.policy, every error one line
naming the file and key; a policy-only change reroutes without restarting containers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from proxy.policy import Policy, Redirect
from supervisor.deploy.fleet import Fleet
from supervisor.deploy.reconcile import plan
from supervisor.model.errors import ConfigError
from tests.fakes import RecordingRoutes
from tests.utils import make_config


def app(**extra: Any) -> dict[str, Any]:
    return {"image": "a:1", "hosts": ["a.test", "www.a.test"], **extra}


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"alice:$2y${hashed[4:]}\n")
    return path


def errors(tmp_path: Path, **extra: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(tmp_path, {"a": app(**extra)})
    return [str(p) for p in info.value.problems]


def test_defaults_buffer_requests_and_compress_and_nothing_else(tmp_path: Path) -> None:
    spec = make_config(tmp_path, {"a": app()}).apps["a"]
    assert spec.policy == Policy()
    assert spec.policy.buffer_requests and spec.policy.compress and not spec.policy.buffer_responses
    assert spec.policy.summary() == {}
    off = make_config(tmp_path, {"a": app(compress=False)}).apps["a"].policy
    assert not off.compress and off.summary() == {"compress": False}


def test_an_apps_max_body_size_may_be_above_the_proxys(tmp_path: Path) -> None:
    """Bodies are held to the routed app's limit (proxy/exchange.py), so it may be higher."""
    spec = make_config(tmp_path, {"a": app(proxy={"max_body_size": 4 << 30})}).apps["a"]
    assert spec.policy.max_body_size == 4 << 30


def test_every_key_is_read(tmp_path: Path) -> None:
    users = users_file(tmp_path)
    spec = make_config(tmp_path, {"a": app(
        path_prefix="/api", strip_prefix=True, buffer_requests=False, buffer_responses=True,
        canonical_host="a.test", redirects=[{"from": "/old", "to": "/new/$1", "status": 308},
                                            {"from": "/x", "to": "/y", "exact": True}],
        basic_auth={"users_file": "htpasswd", "realm": "Staff", "exempt": ["/health"]},
        allow=["10.0.0.0/8", "2001:db8::/32"], deny=["10.0.0.1"], compress=False,
        headers={"X-Frame-Options": "DENY"}, request_headers={"X-Tenant": "a"}, security_headers=True,
        proxy={"max_body_size": 1000, "upstream_response_timeout": 5, "client_body_timeout": 2.5,
               "request_buffer_memory": 4096},
    )}).apps["a"]
    p = spec.policy
    assert (p.strip_prefix, p.buffer_requests, p.buffer_responses, p.canonical_host) == (True, False, True, "a.test")
    assert p.redirects == (Redirect("/old", "/new/$1", 308), Redirect("/x", "/y", 301, True))
    assert p.basic_auth is not None and p.basic_auth.users_file == str(users)
    assert p.basic_auth.realm == "Staff" and p.basic_auth.exempt == ("/health",)
    assert [u for u, _ in p.basic_auth.users] == ["alice"]
    assert p.allow == ("10.0.0.0/8", "2001:db8::/32") and p.deny == ("10.0.0.1",)
    assert not p.compress and p.security_headers
    assert p.headers == (("X-Frame-Options", "DENY"),) and p.request_headers == (("X-Tenant", "a"),)
    assert (p.max_body_size, p.upstream_response_timeout, p.client_body_timeout, p.request_buffer_memory) == (
        1000, 5.0, 2.5, 4096)
    assert p.validate() == []
    assert "$2y$" not in str(p.summary())


@pytest.mark.parametrize(("extra", "key", "fragment"), [
    ({"allow": ["10.0.0.0/33"]}, "apps.a.allow[0]", '"10.0.0.0/33" is not an IP address or CIDR network'),
    ({"deny": ["nope"]}, "apps.a.deny[0]", "is not an IP address"),
    ({"allow": "10.0.0.0/8"}, "apps.a.allow", "must be an array of non-empty strings"),
    ({"strip_prefix": True}, "apps.a.strip_prefix", 'needs a path_prefix other than "/"'),
    ({"canonical_host": "*.a.test"}, "apps.a.canonical_host", "not a wildcard"),
    ({"canonical_host": "a test"}, "apps.a.canonical_host", "is not a host name"),
    ({"redirects": [{"from": "old", "to": "/new"}]}, "apps.a.redirects[0].from", 'must be a path starting with "/"'),
    ({"redirects": [{"from": "/old"}]}, "apps.a.redirects[0].to", "is required"),
    ({"redirects": [{"from": "/o", "to": "/n", "status": 303}]}, "apps.a.redirects[0].status",
     "must be one of 301, 302, 307, 308, got 303"),
    ({"redirects": [{"from": "/o", "to": "/n", "typo": 1}]}, "apps.a.redirects[0].typo", "unknown key"),
    ({"basic_auth": {"users_file": "missing"}}, "apps.a.basic_auth.users_file", "does not exist"),
    ({"basic_auth": {}}, "apps.a.basic_auth.users_file", "is required"),
    ({"basic_auth": {"users_file": "h", "realm": 'a"b'}}, "apps.a.basic_auth.realm", "must not contain quotes"),
    ({"headers": {"Bad Name": "x"}}, "apps.a.headers.\"Bad Name\"", "is not a header name"),
    ({"headers": {"X-A": 1}}, "apps.a.headers.X-A", "must be a string without line breaks, got 1"),
    ({"headers": {"Content-Length": "1"}}, "apps.a.headers.Content-Length", "set by the proxy itself"),
    ({"request_headers": {"Host": "x"}}, "apps.a.request_headers.Host", "set by the proxy itself"),
    ({"compress": "yes"}, "apps.a.compress", 'must be true or false, got "yes"'),
    ({"buffer_requests": 1}, "apps.a.buffer_requests", "must be true or false"),
    ({"proxy": {"max_body_size": -1}}, "apps.a.proxy.max_body_size", "an integer number of bytes >= 0"),
    ({"proxy": {"client_body_timeout": 0}}, "apps.a.proxy.client_body_timeout", "a positive number of seconds"),
    ({"proxy": {"max_connections": 5}}, "apps.a.proxy.max_connections", "unknown key"),
])
def test_errors_name_file_and_key(tmp_path: Path, extra: dict[str, Any], key: str, fragment: str) -> None:
    (tmp_path / "h").write_text("alice:$2y$05$abcdefghijklmnopqrstuu5Xx3oKk1yX5bX2q3m9hZ1WfQ0Q1bC6\n")
    found = errors(tmp_path, **extra)
    assert len(found) == 1, found
    assert found[0].startswith(str(tmp_path / "dockyard.toml") + f": {key}: "), found
    assert fragment in found[0]


def test_users_file_errors(tmp_path: Path) -> None:
    (tmp_path / "md5").write_text("bob:$apr1$x$y\n")
    assert "htpasswd -B" in errors(tmp_path, basic_auth={"users_file": "md5"})[0]
    (tmp_path / "empty").write_text("\n# nobody\n")
    assert "has no users" in errors(tmp_path, basic_auth={"users_file": "empty"})[0]
    if os.geteuid() != 0:  # root reads anything
        (tmp_path / "secret").write_text("x")
        (tmp_path / "secret").chmod(0)
        assert "cannot be read" in errors(tmp_path, basic_auth={"users_file": "secret"})[0]


def test_a_policy_only_change_reroutes_without_restarting(tmp_path: Path) -> None:
    old = make_config(tmp_path, {"a": app()})
    new = make_config(tmp_path, {"a": app(allow=["10.0.0.0/8"], headers={"X-A": "1"})})
    p = plan(old, new)
    assert (p.rerouted, p.changed, p.scaled) == (("a",), (), ())


def test_a_changed_users_file_reroutes(tmp_path: Path) -> None:
    users_file(tmp_path)
    old = make_config(tmp_path, {"a": app(basic_auth={"users_file": "htpasswd"})})
    users_file(tmp_path)  # a new salt: another hash
    new = make_config(tmp_path, {"a": app(basic_auth={"users_file": "htpasswd"})})
    assert plan(old, new).rerouted == ("a",)


def test_the_fleet_gives_the_proxy_the_policy(tmp_path: Path) -> None:
    spec = make_config(tmp_path, {"a": app(deny=["10.0.0.1"])}).apps["a"]
    routes = RecordingRoutes()
    Fleet(routes).install(spec)
    assert routes.options["a"]["policy"] == spec.policy


def test_the_real_proxy_accepts_every_config_policy(tmp_path: Path) -> None:
    from proxy.routes import make_service

    users_file(tmp_path)
    spec = make_config(tmp_path, {"a": app(
        path_prefix="/api", strip_prefix=True, canonical_host="a.test", redirects=[{"from": "/o", "to": "/n"}],
        basic_auth={"users_file": "htpasswd"}, allow=["10.0.0.0/8"], headers={"X-A": "1"}, security_headers=True,
        proxy={"max_body_size": 10})}).apps["a"]
    service = make_service("a", spec.hosts, ["127.0.0.1:1"], spec.path_prefix, policy=spec.policy)
    assert service.steps is not None and service.steps.every_request


def test_status_shows_each_apps_policies() -> None:
    from supervisor.cli.status import render_status

    report = {"version": "x", "pid": 1, "uptime": 1, "config": "c", "apps": [{
        "app": "a", "release": 1, "hosts": ["a.test"], "path_prefix": "/", "targets": [], "inflight": 0,
        "health": "healthy", "restarts": 0, "containers": [],
        "policies": Policy(allow=("10.0.0.0/8",), compress=False, redirects=(Redirect("/o", "/n"),)).summary()}]}
    assert "  policies redirects=/o  allow=10.0.0.0/8  compress=off" in render_status(report)
