"""Malformed configs: each fixture in tests/fixtures/configs/bad_*.toml is rejected with a
ConfigError naming the file and the key path, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.loader import load_config
from supervisor.model.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"

# fixture name -> (key path, fragment of the message)
CASES: dict[str, tuple[str, str]] = {
    "bad_syntax": ("", "invalid TOML: Expected ']' at the end of a table declaration (at line 2, column 8)"),
    "bad_unknown_top_key": ("servr", "unknown key (did you mean 'server'?)"),
    "bad_unknown_app_key": ("apps.hello.imgae", "unknown key (did you mean 'image'?)"),
    "bad_no_image_no_build": ("apps.hello", "needs exactly one of image or build, got neither"),
    "bad_image_and_build": ("apps.hello", "needs exactly one of image or build, got both"),
    "bad_listen": ("server.listen", 'must be host:port (e.g. 127.0.0.1:8080 or 0.0.0.0:80), got "8080"'),
    "bad_listen_port": ("server.listen", 'port must be 1-65535 in "0.0.0.0:99999"'),
    "bad_timezone": ("server.timezone", 'unknown time zone "Mars/Olympus_Mons"'),
    "bad_instance": ("server.instance", "must be letters, digits"),
    "bad_port_type": ("apps.hello.port", 'must be an integer 1-65535, got "5000"'),
    "bad_host": ("apps.hello.hosts[0]", '"http://hello.example.com/" is not a host name'),
    "bad_wildcard": ("apps.hello.hosts[0]", '"api.*.example.com" is not a host name or a `*.domain` wildcard'),
    "bad_duplicate_route": ("apps.other.hosts", "host 'hello.localhost' with path_prefix '/' is already routed to app 'hello'"),
    "bad_network": ("apps.hello.network", 'must be one of bridge, host, got "overlay"'),
    "bad_path_prefix": ("apps.hello.path_prefix", 'must start with "/", got "api"'),
    "bad_retire_after": ("apps.hello.retire_after", "must be a number of seconds >= 0, got -5"),
    "bad_restart": ("apps.hello.restart", 'must be no, always, unless-stopped, on-failure or on-failure:N, got "sometimes"'),
    "bad_volume": ("apps.hello.volumes[0]", 'got "data"'),
    "bad_env_value": ("apps.hello.env.DEBUG", "must be a string or a number, got true"),
    "bad_env_name": ("apps.hello.env.1ST", "environment variable names must be"),
    "bad_app_name": ("apps.Hello_World", "app names must be lowercase letters, digits and dashes"),
    "bad_deploy_branch": ("apps.hello.deploy_branch", '"my branch" is not a valid git branch name'),
    "bad_app_json_missing": ("apps.hello.app_json", "does-not-exist.json' could not be loaded"),
    "bad_processes_not_table": ("apps.hello.processes", "must be a table, got an array"),
    "bad_apps_not_table": ("apps", "must be a table, got 3"),
    "bad_scale": ("apps.hello.processes.web.scale", "must be an integer >= 0, got -1"),
    "bad_command": ("apps.hello.processes.web.command", "must be a non-empty string (run by the image's shell) or a non-empty array of strings, got 42"),
    "bad_attempts": ("apps.web.healthchecks.web[0].attempts", 'must be a positive integer, got "three"'),
    "bad_check_type": ("apps.hello.healthchecks.web[0].type", 'must be one of startup, liveness, readiness (or path), got "sometimes"'),
    "bad_check_unknown_key": ("apps.hello.healthchecks.web[0].initial_delay", "unknown key (did you mean 'initialDelay'?)"),
    "bad_check_path_and_command": ("apps.hello.healthchecks.web[0]", "only one of command, path, uptime, listening; got command, path"),
    "bad_check_unknown_process": ("apps.hello.healthchecks.worker", "no process named 'worker' (processes: web)"),
    "bad_check_http_headers": ("apps.hello.healthchecks.web[0].httpHeaders[0]", 'must be a table, got "X-Forwarded-Proto: https"'),
    "bad_check_timeout": ("apps.hello.healthchecks.web[0].timeout", "must be a positive number of seconds, got 0"),
    "bad_check_scheme": ("apps.hello.healthchecks.web[0].scheme", 'must be http or https, got "ftp"'),
    "bad_check_path": ("apps.hello.healthchecks.web[0].path", 'must start with "/", got "health"'),
    "bad_cron_fields": ('apps.hello.cron[0] (id "cleanup").schedule', "must have 5 fields"),
    "bad_cron_range": ('apps.hello.cron[0] (id "cleanup").schedule', 'minute field "61": "61" is not in 0-59'),
    "bad_cron_alias": ('apps.hello.cron[0] (id "report").schedule', 'unknown schedule alias "@fortnightly"'),
    "bad_cron_policy": ('apps.hello.cron[0] (id "cleanup").concurrency_policy', 'must be one of allow, forbid, replace, got "skip"'),
    "bad_cron_missing_command": ('apps.hello.cron[0] (id "cleanup").command', "is required"),
    "bad_cron_duplicate_id": ('apps.hello.cron[1] (id "cleanup").id', "duplicate cron id 'cleanup' (also apps.hello.cron[0])"),
    "bad_cron_timeout": ('apps.hello.cron[0] (id "cleanup").timeout', 'must be a positive number of seconds, got "5m"'),
    "bad_memory": ("apps.hello.limits.memory", 'got "256 megabytes"'),
    "bad_cpus": ("apps.hello.limits.cpus", "must be a positive number of CPUs (e.g. 0.5), got 0"),
    "bad_proxy_value": ("proxy.max_body_size", "must be >= 0, got -1"),
    "bad_proxy_type": ("proxy.access_log", 'must be true or false, got "yes"'),
    "bad_proxy_unknown_key": ("proxy.max_body", "unknown key (did you mean 'max_body_size'?)"),
}


def test_every_bad_fixture_has_a_case() -> None:
    on_disk = {p.stem for p in CONFIGS.glob("bad_*.toml")} - {"bad_many_problems"}
    assert on_disk == set(CASES)
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_config_is_rejected_with_file_and_key(name: str) -> None:
    key, fragment = CASES[name]
    path = CONFIGS / f"{name}.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [p for p in caught.value.problems if p.key == key and fragment in p.message]
    assert problems, f"no problem {key!r}: ...{fragment}... in:\n{caught.value}"
    line = str(problems[0])
    prefix = f"{path}: {key}: " if key else f"{path}: "
    assert line.startswith(prefix), line
    assert "Traceback" not in str(caught.value)


def test_the_exact_message_of_the_briefs_example() -> None:
    path = CONFIGS / "bad_attempts.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f'{path}: apps.web.healthchecks.web[0].attempts: must be a positive integer, got "three"'


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIGS / "bad_many_problems.toml")
    keys = {p.key for p in caught.value.problems}
    assert keys == {
        "server.listen",
        "apps.hello.port",
        "apps.hello.network",
        'apps.hello.cron[0] (id "x").schedule',
    }
    assert str(caught.value).count("\n") == 3


def test_relative_path_is_kept_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CONFIGS.parent.parent.parent)
    with pytest.raises(ConfigError) as caught:
        load_config("tests/fixtures/configs/bad_network.toml")
    assert str(caught.value).startswith("tests/fixtures/configs/bad_network.toml: apps.hello.network: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file: No such file or directory"):
        load_config(tmp_path / "nope.toml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\ninstance = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_app_json_problems_name_the_app_json_file(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text('{"healthchecks": {"web": [{"path": "/", "attempts": "3"}]}}')
    (tmp_path / "dockyard.toml").write_text('[apps.a]\nimage = "a:1"\napp_json = "app.json"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "dockyard.toml")
    first = caught.value.problems[0]
    assert first.file == str(tmp_path / "app.json")
    assert first.key == "healthchecks.web[0].attempts"
    assert caught.value.problems[-1].key == "apps.a.app_json"


def test_app_json_required_env_must_be_set(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text('{"env": {"DATABASE_URL": {"description": "db"}}}')
    (tmp_path / "dockyard.toml").write_text('[apps.a]\nimage = "a:1"\napp_json = "app.json"\n')
    with pytest.raises(ConfigError, match=r"app\.json: required env var DATABASE_URL has no value; set it in \[apps\.a\.env\]"):
        load_config(tmp_path / "dockyard.toml")
    (tmp_path / "dockyard.toml").write_text(
        '[apps.a]\nimage = "a:1"\napp_json = "app.json"\nenv = { DATABASE_URL = "postgres://x" }\n'
    )
    assert load_config(tmp_path / "dockyard.toml").apps["a"].env["DATABASE_URL"] == "postgres://x"


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("* * * * * *", "must have 5 fields"),
        ("60 * * * *", 'minute field "60"'),
        ("* 24 * * *", 'hour field "24"'),
        ("* * 0 * *", 'day of month field "0"'),
        ("* * * 13 *", 'month field "13"'),
        ("* * * * 8", 'day of week field "8": "8" is not in 0-7 or sun-sat'),
        ("* * * foo *", 'month field "foo"'),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "goes backwards"),
        ("1,,2 * * * *", "empty list element"),
        ("@every 5m", "unknown schedule alias"),
    ],
)
def test_bad_cron_schedules(schedule: str, fragment: str) -> None:
    from supervisor.config.loader import parse_config

    data = {"apps": {"a": {"image": "a", "cron": [{"id": "t", "command": "true", "schedule": schedule}]}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("x.toml"))
    assert 'x.toml: apps.a.cron[0] (id "t").schedule: ' in str(caught.value)
    assert fragment in str(caught.value)
