"""Pure logic of the lifecycle, without Docker: reload plans, restart policy, scale words."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from supervisor.cli.apps import parse_counts
from supervisor.deploy.reconcile import plan
from supervisor.deploy.watch import backoff, should_restart
from tests.utils import make_config


def cfg(tmp_path: Path, apps: dict[str, Any], **server: Any) -> Any:
    return make_config(tmp_path, apps, **server)


def app(image: str = "a:1", **extra: Any) -> dict[str, Any]:
    return {"image": image, "hosts": ["a.test"], **extra}


def test_plan_sorts_apps(tmp_path: Path) -> None:
    old = cfg(tmp_path, {"same": app(), "gone": app(hosts=["g.test"]), "img": app(hosts=["i.test"]),
                         "env": app(hosts=["e.test"]), "big": app(hosts=["b.test"]),
                         "moved": app(hosts=["m.test"])})
    new = cfg(tmp_path, {"same": app(), "img": app("a:2", hosts=["i.test"]),
                         "env": app(hosts=["e.test"], env={"X": "1"}),
                         "big": app(hosts=["b.test"], processes={"web": {"scale": 3}}),
                         "moved": app(hosts=["m2.test"]), "fresh": app(hosts=["f.test"])})
    p = plan(old, new)
    assert p.added == ("fresh",)
    assert p.removed == ("gone",)
    assert p.changed == ("env", "img")
    assert p.scaled == ("big",)
    assert p.rerouted == ("moved",)
    assert p.unchanged == ("same",)
    assert p.needs_restart == ()


def test_plan_env_change_of_one_app_touches_only_it(tmp_path: Path) -> None:
    old = cfg(tmp_path, {"a": app(), "b": app(hosts=["b.test"])})
    new = cfg(tmp_path, {"a": app(env={"K": "v"}), "b": app(hosts=["b.test"])})
    p = plan(old, new)
    assert p.changed == ("a",) and p.unchanged == ("b",)
    assert not (p.added or p.removed or p.scaled or p.rerouted)


def test_plan_reports_server_changes_needing_restart(tmp_path: Path) -> None:
    old = cfg(tmp_path, {"a": app()})
    new = cfg(tmp_path, {"a": app()}, listen="127.0.0.1:9999")
    assert plan(old, new).needs_restart == ("listen",)


def test_plan_scale_and_route_change_together(tmp_path: Path) -> None:
    old = cfg(tmp_path, {"a": app()})
    new = cfg(tmp_path, {"a": app(hosts=["x.test"], processes={"web": {"scale": 2}})})
    p = plan(old, new)
    assert (p.scaled, p.rerouted, p.changed) == (("a",), ("a",), ())


@pytest.mark.parametrize(
    ("policy", "code", "restarts", "expected"),
    [
        ("no", 1, 0, False),
        ("always", 0, 100, True),
        ("unless-stopped", 0, 0, True),
        ("on-failure", 1, 1000, True),
        ("on-failure", 0, 0, False),
        ("on-failure:10", 137, 9, True),
        ("on-failure:10", 137, 10, False),
        ("on-failure:3", None, 0, True),
    ],
)
def test_should_restart(policy: str, code: int | None, restarts: int, expected: bool) -> None:
    assert should_restart(policy, code, restarts) is expected


def test_backoff_doubles_and_caps() -> None:
    assert [backoff(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(50) == 30.0


def test_parse_counts() -> None:
    assert parse_counts(["web=3", "worker=0"]) == {"web": 3, "worker": 0}
    for bad in ("web", "web=", "=3", "web=-1", "web=three"):
        with pytest.raises(ValueError, match="PROCESS=COUNT"):
            parse_counts([bad])


@pytest.mark.parametrize(
    ("key", "value"),
    [("control_socket", "/tmp/other.sock"), ("instance", "other"),
     ("tls_listen", "127.0.0.1:8443"), ("metrics_listen", "127.0.0.1:9100"),
     ("acme_directory", "https://acme.test/dir"), ("acme_email", "ops@example.com")],
)
def test_plan_each_server_field_needing_a_restart(tmp_path: Path, key: str, value: str) -> None:
    old = cfg(tmp_path, {"a": app()})
    new = cfg(tmp_path, {"a": app()}, **{key: value})
    p = plan(old, new)
    assert p.needs_restart == (key,)
    assert p.unchanged == ("a",)


def test_plan_a_new_state_dir_moves_the_default_control_socket_too(tmp_path: Path) -> None:
    p = plan(cfg(tmp_path, {"a": app()}), cfg(tmp_path, {"a": app()}, state_dir="elsewhere"))
    assert p.needs_restart == ("state_dir", "control_socket")


def test_plan_proxy_options_need_a_restart_and_other_server_fields_do_not(tmp_path: Path) -> None:
    old = cfg(tmp_path, {"a": app()})
    assert plan(old, dataclasses.replace(old, proxy=dataclasses.replace(old.proxy, max_body_size=1))).needs_restart == ("proxy",)
    quiet = cfg(tmp_path, {"a": app()}, timezone="Europe/Paris", acme_renew_days=10)
    assert plan(old, quiet).needs_restart == ()


@pytest.mark.parametrize(
    "extra",
    [{"path_prefix": "/shop"}, {"balance": "least_inflight"}, {"tls": "acme"},
     {"tls_redirect": True}, {"hsts": 3600}],
)
def test_plan_route_fields_reroute_without_touching_containers(tmp_path: Path, extra: dict[str, Any]) -> None:
    old = cfg(tmp_path, {"a": app()})
    new = dataclasses.replace(old, apps={"a": dataclasses.replace(old.apps["a"], **extra)})
    p = plan(old, new)
    assert (p.rerouted, p.changed, p.scaled) == (("a",), (), ())


@pytest.mark.parametrize(
    "extra",
    [{"processes": {"web": {"command": "serve --fast"}}},
     {"healthchecks": {"web": [{"path": "/up"}]}},
     {"limits": {"memory": "256m"}},
     {"predeploy": "migrate"},
     {"stop_timeout": 3},
     {"port": 8000},
     {"network": "host"},
     {"volumes": ["/srv/data:/data"]}],
)
def test_plan_anything_a_container_starts_with_is_a_change(tmp_path: Path, extra: dict[str, Any]) -> None:
    p = plan(cfg(tmp_path, {"a": app()}), cfg(tmp_path, {"a": app(**extra)}))
    assert p.changed == ("a",)
    assert (p.rerouted, p.scaled, p.unchanged) == ((), (), ())


def test_plan_a_change_wins_over_a_scale_or_a_reroute_of_the_same_app(tmp_path: Path) -> None:
    new = app("a:2", hosts=["x.test"], processes={"web": {"scale": 4}})
    p = plan(cfg(tmp_path, {"a": app()}), cfg(tmp_path, {"a": new}))
    assert (p.changed, p.scaled, p.rerouted) == (("a",), (), ())
    assert p.as_dict()["changed"] == ["a"] and p.as_dict()["added"] == []


def test_plan_of_a_config_with_itself_changes_nothing(tmp_path: Path) -> None:
    both = cfg(tmp_path, {"a": app(), "b": app(hosts=["b.test"], processes={"web": {"scale": 2}})})
    p = plan(both, both)
    assert p.unchanged == ("a", "b")
    assert not (p.added or p.removed or p.changed or p.scaled or p.rerouted or p.needs_restart)
