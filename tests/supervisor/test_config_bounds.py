"""Issue 18, item 7: every number in the config has a sane range; `scale` persists new counts only
after the new containers pass their checks, and never leaks the ones it started."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.config.appjson import parse_app_json
from supervisor.deploy.scale import scale
from supervisor.model import defaults
from supervisor.model.errors import ConfigError, DeployError
from supervisor.runtime.containers import container_name
from tests.conftest import TEST_LABELS
from tests.supervisor.test_deploy_docker import app_def
from tests.utils import make_config, stack


def problems(tmp_path: Path, apps: dict[str, Any], **top: Any) -> list[str]:
    try:
        make_config_with(tmp_path, apps, **top)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def make_config_with(tmp_path: Path, apps: dict[str, Any], **top: Any) -> Any:
    from supervisor.config.loader import parse_config

    data = {"server": {"state_dir": str(tmp_path / "state")}, "apps": apps, **top}
    return parse_config(data, tmp_path / "dockyard.toml")


@pytest.mark.parametrize(
    "apps,top,key",
    [
        ({}, {"proxy": {"max_header_size": 0}}, "proxy.max_header_size"),
        ({}, {"proxy": {"max_header_size": 10**12}}, "proxy.max_header_size"),
        ({}, {"proxy": {"upstream_response_timeout": 1e12}}, "proxy.upstream_response_timeout"),
        ({"a": {"image": "x", "stop_timeout": 1e12}}, {}, "apps.a.stop_timeout"),
        ({"a": {"image": "x", "retire_after": 1e12}}, {}, "apps.a.retire_after"),
        ({"a": {"image": "x", "deploy_timeout": 1e12}}, {}, "apps.a.deploy_timeout"),
        ({"a": {"image": "x", "processes": {"web": {"scale": 10**9}}}}, {}, "apps.a.processes.web.scale"),
        ({"a": {"image": "x", "limits": {"cpus": 1e9}}}, {}, "apps.a.limits.cpus"),
        ({"a": {"image": "x", "healthchecks": {"web": [{"attempts": 10**9}]}}}, {}, "apps.a.healthchecks.web[0].attempts"),
        ({"a": {"image": "x", "healthchecks": {"web": [{"timeout": 1e12}]}}}, {}, "apps.a.healthchecks.web[0].timeout"),
        ({"a": {"image": "x", "cron": [{"command": "x", "schedule": "@daily", "timeout": 1e12}]}}, {}, "apps.a.cron[0].timeout"),
    ],
)
def test_out_of_range_numbers_are_one_clear_error(tmp_path: Path, apps: dict[str, Any], top: dict[str, Any], key: str) -> None:
    found = problems(tmp_path, apps, **top)
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'dockyard.toml'}: {key}: must be"), found


def test_the_largest_sane_values_pass(tmp_path: Path) -> None:
    apps = {"a": {"image": "x", "stop_timeout": defaults.MAX_SECONDS,
                  "processes": {"web": {"scale": defaults.MAX_SCALE}}}}
    assert problems(tmp_path, apps, proxy={"max_header_size": defaults.MIN_HEADER_SIZE}) == []


def test_app_json_formation_over_the_cap_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"formation.web.quantity: must be at most 1000"):
        parse_app_json(json.dumps({"formation": {"web": {"quantity": 10**9}}}), "app.json")


def test_metrics_listen_off_loopback_warns(tmp_path: Path) -> None:
    public = make_config_with(tmp_path, {}, server={"state_dir": "s", "metrics_listen": "0.0.0.0:9100"})
    assert any("server.metrics_listen" in w and "not a loopback" in w for w in public.warnings)
    local = make_config_with(tmp_path, {}, server={"state_dir": "s", "metrics_listen": "127.0.0.1:9100"})
    assert not any("metrics_listen" in w for w in local.warnings)


@pytest.mark.docker
async def test_scale_beyond_the_cap_is_refused_before_anything(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], processes={"web": {"scale": 1}})})
    async with stack(config, docker_client) as s:
        with pytest.raises(DeployError, match="outside 0-1000"):
            await scale(s.sup.ctx, "web", {"web": 10**9})
        assert s.state.scale("web") == {}


@pytest.mark.docker
async def test_scale_saves_counts_only_after_the_new_containers_pass(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    app = app_def(app_images["v1"], default_checks_wait=0.5,
                  processes={"web": {"scale": 1}, "worker": {"command": "exit 3", "scale": 0}})
    config = make_config(tmp_path, {"web": app})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        with pytest.raises(DeployError, match="nothing changed"):
            await scale(s.sup.ctx, "web", {"worker": 2})
        assert s.state.scale("web") == {}
        workers = await s.sup.runtime.list({"dockyard.instance": s.sup.instance, "dockyard.process": "worker"})
        assert workers == []


@pytest.mark.docker
async def test_a_failed_start_half_way_removes_the_containers_already_started(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str]
) -> None:
    config = make_config(tmp_path, {"web": app_def(app_images["v1"], processes={"web": {"scale": 1}})})
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
        release = s.sup.serving["web"].release
        # The third container's name is taken, so its start fails after two have started.
        blocker = docker_client.containers.create(
            app_images["v1"], name=container_name("web", "web", 3, release, s.sup.instance), labels=TEST_LABELS
        )
        try:
            with pytest.raises(Exception, match="Conflict|already in use"):
                await scale(s.sup.ctx, "web", {"web": 4})
            mine = await s.sup.runtime.list({"dockyard.instance": s.sup.instance, "dockyard.process": "web"})
            assert {c.id for c in mine} == {c.id for c in s.sup.serving["web"].containers}
            assert len(mine) == 1 and s.state.scale("web") == {}
        finally:
            blocker.remove(force=True)
