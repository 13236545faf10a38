"""Issue 18, item 6: `onFailure` (which Dokku runs on the host) is refused, never run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.config.appjson import parse_app_json
from supervisor.config.repo import merge_repo
from supervisor.model.errors import ConfigError
from supervisor.model.spec import AppSpec, ProcessSpec
from tests.utils import make_config

HOOK = {"command": ["touch", "/tmp/dockyard-onfailure-ran"], "url": "http://127.0.0.1:9/x"}


def test_on_failure_in_the_toml_is_a_clear_error(tmp_path: Path) -> None:
    apps = {"a": {"image": "x", "healthchecks": {"web": [{"path": "/", "onFailure": HOOK}]}}}
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, apps)
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{tmp_path / 'dockyard.toml'}: apps.a.healthchecks.web[0].onFailure: is not supported")
    assert "never runs a command" in problem and "on the host" in problem


def test_on_failure_in_a_pushed_app_json_is_ignored_with_a_warning() -> None:
    text = json.dumps({"healthchecks": {"web": [{"path": "/", "onFailure": HOOK}]}})
    app = AppSpec(name="a", processes={"web": ProcessSpec("web")})  # type: ignore[arg-type]
    merged = merge_repo(app, app_json=text, source="abc1234")
    check = merged.spec.healthchecks["web"][0]
    assert check.path == "/"
    assert any("abc1234:app.json: healthchecks.web[0].onFailure: ignored" in w for w in merged.warnings)
    assert parse_app_json(text, "app.json").healthchecks["web"][0].path == "/"
