"""Pure logic of the lifecycle, without Docker: reload plans, restart policy, scale words."""

from __future__ import annotations

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
