"""Merging a repository's Procfile and app.json into the config's app: the config wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.config.repo import merge_repo
from supervisor.git.repo import GitError, RefUpdate, app_from_ssh_command, check_update
from supervisor.model.errors import ConfigError
from supervisor.model.spec import AppSpec
from tests.utils import make_config

PROCFILE = "web: /bin/app-web\nworker: /bin/app-worker  # background\n"
APP_JSON = json.dumps(
    {
        "healthchecks": {
            "web": [{"type": "startup", "name": "repo-web", "path": "/health", "attempts": 2}],
            "worker": [{"type": "startup", "name": "repo-worker", "uptime": 1}],
        },
        "cron": [{"command": "echo tick", "schedule": "@hourly"}],
        "formation": {"worker": {"quantity": 2}},
        "scripts": {"dokku": {"predeploy": "echo pre", "postdeploy": "echo post"}},
        "env": {"GREETING": "hello", "FROM_REPO": {"value": "yes"}},
    }
)
REV = "a" * 40


def app(tmp_path: Path, **table: Any) -> AppSpec:
    return make_config(tmp_path, {"web": {"image": "x:1", **table}}).apps["web"]


def test_procfile_defines_processes_when_the_config_does_not(tmp_path: Path) -> None:
    spec = merge_repo(app(tmp_path), procfile=PROCFILE).spec
    assert {n: (p.command, p.scale) for n, p in spec.processes.items()} == {
        "web": ("/bin/app-web", 1),
        "worker": ("/bin/app-worker", 1),
    }


def test_config_scales_stay_when_the_procfile_gives_commands(tmp_path: Path) -> None:
    spec = merge_repo(app(tmp_path, processes={"web": {"scale": 3}}), procfile=PROCFILE).spec
    assert spec.processes["web"].command == "/bin/app-web"
    assert spec.processes["web"].scale == 3


def test_config_commands_win_over_the_procfile(tmp_path: Path) -> None:
    merged = merge_repo(app(tmp_path, processes={"web": {"command": "/bin/other"}}), procfile=PROCFILE)
    assert list(merged.spec.processes) == ["web"]
    assert merged.spec.processes["web"].command == "/bin/other"
    assert any("Procfile: ignored" in w for w in merged.warnings)


def test_app_json_fills_what_the_config_leaves_open(tmp_path: Path) -> None:
    merged = merge_repo(app(tmp_path, env={"GREETING": "config"}), procfile=PROCFILE, app_json=APP_JSON)
    spec = merged.spec
    assert [c.name for c in spec.checks_for("web")] == ["repo-web"]
    assert [c.name for c in spec.checks_for("worker")] == ["repo-worker"]
    assert [(c.command, c.schedule, c.source) for c in spec.cron] == [("echo tick", "@hourly", "app.json")]
    assert spec.processes["worker"].scale == 2
    assert (spec.predeploy, spec.postdeploy) == ("echo pre", "echo post")
    assert spec.env["GREETING"] == "config" and spec.env["FROM_REPO"] == "yes"


def test_config_wins_where_both_define_a_thing(tmp_path: Path) -> None:
    table = {
        "processes": {"web": {"scale": 1}, "worker": {"scale": 5}},
        "healthchecks": {"web": [{"name": "config-web", "path": "/", "type": "startup"}]},
        "cron": [{"id": "nightly", "command": "echo config", "schedule": "@daily"}],
        "predeploy": "echo config-pre",
    }
    spec = merge_repo(app(tmp_path, **table), procfile=PROCFILE, app_json=APP_JSON).spec
    assert [c.name for c in spec.checks_for("web")] == ["config-web"]
    assert [c.name for c in spec.checks_for("worker")] == ["repo-worker"]
    assert [c.id for c in spec.cron] == ["nightly"]
    assert spec.processes["worker"].scale == 5  # the config scale beats the formation
    assert spec.predeploy == "echo config-pre" and spec.postdeploy == "echo post"


def test_checks_for_unknown_processes_only_warn(tmp_path: Path) -> None:
    merged = merge_repo(app(tmp_path), app_json=APP_JSON)  # no Procfile: only web
    assert "worker" not in merged.spec.healthchecks
    assert any("'worker' ignored" in w for w in merged.warnings)


def test_bad_repository_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Procfile: line 1"):
        merge_repo(app(tmp_path), procfile="not a procfile line\n", source="abc1234")
    with pytest.raises(ConfigError, match="invalid JSON"):
        merge_repo(app(tmp_path), app_json="{nope")


def test_nothing_in_the_repository_changes_nothing(tmp_path: Path) -> None:
    spec = app(tmp_path)
    assert merge_repo(spec).spec == spec


@pytest.mark.parametrize(
    ("branch", "ref", "ok"),
    [
        (None, "refs/heads/main", True),
        (None, "refs/heads/master", True),
        (None, "refs/heads/feature", False),
        (None, "refs/tags/v1", False),
        ("deploy", "refs/heads/deploy", True),
        ("deploy", "refs/heads/main", False),
    ],
)
def test_only_the_deploy_branch_is_accepted(tmp_path: Path, branch: str | None, ref: str, ok: bool) -> None:
    spec = app(tmp_path, **({"deploy_branch": branch} if branch else {}))
    update = RefUpdate("0" * 40, REV, ref)
    if ok:
        check_update(spec, update)
    else:
        with pytest.raises(GitError, match="deploys only from branch"):
            check_update(spec, update)


def test_deleting_the_deploy_branch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="deleting"):
        check_update(app(tmp_path), RefUpdate(REV, "0" * 40, "refs/heads/main"))


@pytest.mark.parametrize(
    ("command", "app_name"),
    [
        ("git-receive-pack 'web.git'", "web"),
        ("git-receive-pack '/web'", "web"),
        ("git-receive-pack 'dokku/web.git'", "web"),
        ("git receive-pack 'web'", "web"),
    ],
)
def test_app_from_ssh_original_command(command: str, app_name: str) -> None:
    assert app_from_ssh_command(command) == app_name


@pytest.mark.parametrize(
    "command", ["git-upload-pack 'web'", "bash", "git-receive-pack 'Web App'", "git-receive-pack '"]
)
def test_other_ssh_commands_are_refused(command: str) -> None:
    with pytest.raises(GitError):
        app_from_ssh_command(command)
