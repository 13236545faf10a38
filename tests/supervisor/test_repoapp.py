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


def test_checks_and_formation_for_unknown_processes_only_warn(tmp_path: Path) -> None:
    merged = merge_repo(app(tmp_path), procfile="web: /bin/app-web\n", app_json=APP_JSON)
    assert list(merged.spec.processes) == ["web"] and "worker" not in merged.spec.healthchecks
    assert any("healthchecks for process 'worker' ignored" in w for w in merged.warnings)
    assert any("formation for process 'worker' ignored" in w for w in merged.warnings)


def test_formation_adds_a_type_only_when_every_process_runs_the_image_cmd(tmp_path: Path) -> None:
    # No Procfile and no config command: the app runs the image's CMD, and a formation entry
    # adds a type running it, as for the TOML's own app.json (test_config.py).
    spec = merge_repo(app(tmp_path), app_json=APP_JSON).spec
    assert {n: (p.command, p.scale) for n, p in spec.processes.items()} == {"web": (None, 1), "worker": (None, 2)}
    assert [c.name for c in spec.checks_for("worker")] == ["repo-worker"]


# One merge (supervisor.config.merge) for the TOML's app.json and the repository's: each test
# below failed with the repository path's own rules before the two were made one.


def test_an_empty_toml_cron_list_keeps_the_repositorys_cron_out(tmp_path: Path) -> None:
    spec = merge_repo(app(tmp_path, cron=[]), procfile=PROCFILE, app_json=APP_JSON).spec
    assert spec.cron == ()


def test_an_explicit_toml_scale_of_one_beats_the_repositorys_formation(tmp_path: Path) -> None:
    spec = merge_repo(app(tmp_path, processes={"worker": {"scale": 1}}), procfile=PROCFILE, app_json=APP_JSON).spec
    assert spec.processes["worker"].scale == 1
    assert spec.processes["worker"].command == "/bin/app-worker"  # scales alone leave the types to the Procfile


def test_a_required_env_var_without_a_value_is_an_error(tmp_path: Path) -> None:
    required = json.dumps({"env": {"DATABASE_URL": {"description": "the database", "required": True}}})
    with pytest.raises(ConfigError) as caught:
        merge_repo(app(tmp_path), app_json=required, source="abc1234")
    assert str(caught.value) == "abc1234:app.json: required env var DATABASE_URL has no value; set it in [apps.web.env]"
    spec = merge_repo(app(tmp_path, env={"DATABASE_URL": "postgres://db"}), app_json=required).spec
    assert spec.env["DATABASE_URL"] == "postgres://db"


def test_a_generated_env_var_without_a_value_is_left_to_the_supervisor(tmp_path: Path) -> None:
    generated = json.dumps({"env": {"SECRET_KEY": {"generator": "secret"}}})
    merged = merge_repo(app(tmp_path), app_json=generated, source="abc1234")
    assert merged.warnings == () and merged.spec.generate_env == ("SECRET_KEY",)
    given = merge_repo(app(tmp_path, env={"SECRET_KEY": "s"}), app_json=generated)
    assert given.warnings == () and given.spec.generate_env == ()


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"cron": []},
        {"processes": {"worker": {"scale": 1}}},
        {"processes": {"web": {"command": "/bin/web"}}},
        {"env": {"GREETING": "config"}, "predeploy": "echo config-pre"},
        {"healthchecks": {"web": []}},
    ],
)
def test_the_toml_and_the_repository_merge_the_same_app_json_alike(tmp_path: Path, table: dict[str, Any]) -> None:
    (tmp_path / "app.json").write_text(APP_JSON)
    by_toml = app(tmp_path, app_json="app.json", **table)
    by_repo = merge_repo(app(tmp_path, **table), app_json=APP_JSON).spec
    fields = ("processes", "healthchecks", "cron", "env", "predeploy", "postdeploy", "scales_given", "cron_given")
    assert {f: getattr(by_repo, f) for f in fields} == {f: getattr(by_toml, f) for f in fields}


def test_the_configs_own_app_json_beats_the_repositorys(tmp_path: Path) -> None:
    # "The config" is the TOML and the app.json it names: its formation and cron stay.
    own = {"formation": {"worker": {"quantity": 4}}, "cron": [{"command": "echo own", "schedule": "@daily"}]}
    (tmp_path / "own.json").write_text(json.dumps(own))
    spec = merge_repo(app(tmp_path, app_json="own.json"), procfile=PROCFILE, app_json=APP_JSON).spec
    assert spec.processes["worker"].scale == 4
    assert [c.command for c in spec.cron] == ["echo own"]
    assert [c.name for c in spec.checks_for("web")] == ["repo-web"]  # what the config leaves open


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
