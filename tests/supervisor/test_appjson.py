"""Dokku app.json parsing, against Dokku's own test apps (read in place from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.appjson import cron_id, load_app_json, parse_app_json, strip_json_comments
from supervisor.model.errors import ConfigError
from supervisor.model.spec import CronSpec, HealthCheckSpec

DOKKU = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "dokku-app-json"
APP_JSONS = sorted(p.name for p in DOKKU.glob("*.json")) if DOKKU.is_dir() else []
needs_dokku = pytest.mark.skipif(not DOKKU.is_dir(), reason=f"Dokku fixtures not found at {DOKKU}")


def web_check(content: str = "", *, attempts: int = 3, timeout: float = 5, wait: float = 5, name: str = "check-1") -> HealthCheckSpec:
    return HealthCheckSpec(type="startup", name=name, path="/", content=content, attempts=attempts, timeout=timeout, wait=wait)


FULL = {"attempts": 2, "timeout": 5, "wait": 2}  # the "full field set" of Dokku's test apps
TOUCH = ("touch /app/predeploy.test", "touch /app/postdeploy.test")
# fixture -> (web checks, cron (command, schedule), formation, predeploy, postdeploy)
EXPECTED: dict[str, tuple[tuple[HealthCheckSpec, ...], tuple[tuple[str, str], ...], dict[str, int], str | None, str | None]] = {
    "checks-root__app.json": ((web_check(attempts=2),), (), {}, None, None),
    "config__app.json": ((), (), {"web": 1}, None, None),
    "dockerfile-entrypoint__app.json": ((), (), {}, "touch /app/predeploy.test", None),
    "dockerfile-noexpose__app.json": ((web_check("Hello World!", **FULL),), (), {}, None, None),
    "dockerfile-procfile-bad__app.json": ((web_check("nodejs/express", **FULL),), (), {}, None, None),
    "dockerfile-procfile__app-cron-procfile.json": ((web_check("nodejs/express", **FULL),), (("release", "5 5 5 5 5"),), {}, None, None),
    "dockerfile-procfile__app-cron.json": ((web_check("nodejs/express", **FULL),), (("echo hello-from-cron", "5 5 5 5 5"),), {}, *TOUCH),
    "dockerfile-procfile__app.json": ((web_check("nodejs/express", **FULL),), (), {}, *TOUCH),
    "dockerfile__app.json": ((web_check("Hello World!", **FULL),), (), {}, "mkdir -p /app && touch /app/predeploy.test", "mkdir -p /app && touch /app/postdeploy.test"),
    "gitsubmodules__app.json": ((web_check("Hello"),), (), {}, None, None),
    "go-fail-postdeploy__app.json": ((web_check("go"),), (), {}, None, "touch /app/postdeploy.test && ls -la /app"),
    "go-fail-predeploy__app.json": ((web_check("go"),), (), {}, "touch /app/predeploy.test && ls -la /app", None),
    "java__app.json": ((web_check("Hello from Java"),), (), {}, None, None),
    "multi__app.json": ((web_check("Heroku Multi Buildpack on Dokku"),), (), {}, None, None),
    "nodejs-express-noprocfile__app.json": ((web_check("nodejs/express"),), (), {}, None, None),
    "nodejs-express__app.json": ((web_check("nodejs/express", **FULL),), (), {}, *TOUCH),
    "nodejs-worker__app.json": ((), (), {"web": 0, "worker": 1}, None, None),
    "php__app.json": ((web_check("<html><h3>php</h3></html>"),), (), {}, None, None),
    "python-flask__app.json": ((web_check("python/flask"),), (), {}, None, None),
    "python__app-5205a.json": ((), (), {"web": 1, "worker": 1}, None, None),
    "python__app-5205b.json": ((), (), {"web": 1, "cron": 1}, None, None),
    "python__app-cnb-cron.json": ((web_check("python/http.server", **FULL),), (("python3 task.py some cron task", "5 5 5 5 5"),), {}, "touch /workspace/predeploy.test", "touch /workspace/postdeploy.test"),
    "python__app-cnb.json": ((web_check("python/http.server", **FULL),), (), {}, "touch /workspace/predeploy.test", "touch /workspace/postdeploy.test"),
    "python__app-cron-procfile.json": ((web_check("python/http.server", **FULL),), (("task", "5 5 5 5 5"),), {}, None, None),
    "python__app-cron.json": ((web_check("python/http.server", **FULL),), (("python3 task.py some cron task", "5 5 5 5 5"),), {}, *TOUCH),
    "python__app-env-required.json": ((), (), {}, None, None),
    "python__app-env.json": ((), (), {}, "echo ENV_CHECK: SIMPLE_VAR=$SIMPLE_VAR OBJECT_VAR=$OBJECT_VAR", None),
    "python__app-failing-check.json": ((web_check("this-content-does-not-exist", attempts=1, timeout=2, wait=1, name="failing-check"),), (), {}, None, None),
    "python__app-heroku-postdeploy.json": ((web_check("python/http.server", **FULL),), (), {}, *TOUCH),
    "python__app-traefik.json": ((HealthCheckSpec(type="readiness", name="web readiness check", path="/", timeout=5, wait=2),), (), {}, None, None),
    "python__app.json": ((), (), {}, *TOUCH),
    "python__app2.json": ((), (), {}, "touch /app/predeploy2.test", "touch /app/postdeploy.test"),
    "python__app3.json": ((), (), {}, "touch /app/predeploy3.test", "touch /app/postdeploy.test"),
    "ruby__app.json": ((web_check("Hello, world"),), (), {}, None, None),
    "static__app.json": ((web_check("Static Page"),), (), {}, None, None),
    "zombies-buildpack__app.json": ((web_check("go"),), (), {}, None, None),
}


@needs_dokku
def test_every_fixture_has_an_expectation() -> None:
    assert set(APP_JSONS) == set(EXPECTED)


@needs_dokku
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dokku_fixture_loads_with_dokku_defaults(name: str) -> None:
    checks, cron, formation, predeploy, postdeploy = EXPECTED[name]
    parsed = load_app_json(DOKKU / name, app="myapp")
    assert parsed.healthchecks.get("web", ()) == checks
    assert set(parsed.healthchecks) <= {"web"}
    assert [(c.command, c.schedule) for c in parsed.cron] == list(cron)
    for c in parsed.cron:
        assert c == CronSpec(cron_id("myapp", c.command, c.schedule), c.command, c.schedule, "allow", None, "app.json")
    assert dict(parsed.formation) == formation
    assert (parsed.predeploy, parsed.postdeploy) == (predeploy, postdeploy)


@needs_dokku
def test_ignored_keys_and_heroku_postdeploy_warn() -> None:
    parsed = load_app_json(DOKKU / "nodejs-express__app.json")
    ignored = {w.split(": ")[1] for w in parsed.warnings}
    assert ignored == {"addons", "buildpacks", "description", "image", "keywords", "logo", "name", "repository", "website"}
    heroku = load_app_json(DOKKU / "python__app-heroku-postdeploy.json")
    assert len(heroku.warnings) == 1 and "scripts.postdeploy: Heroku's run-once postdeploy" in heroku.warnings[0]


@needs_dokku
def test_env_fixtures() -> None:
    env = load_app_json(DOKKU / "python__app-env.json")
    assert dict(env.env) == {"SIMPLE_VAR": "simple_value", "OBJECT_VAR": "object_default", "SYNC_VAR": "sync_value"}
    assert env.generated_env == ("SECRET_VAR",)
    assert env.required_env == ()  # OPTIONAL_VAR has required: false
    required = load_app_json(DOKKU / "python__app-env-required.json")
    assert required.required_env == ("REQUIRED_VAR",)
    old = load_app_json(DOKKU / "dockerfile__app.json")
    assert dict(old.env) == {"SECRET_TOKEN": "secret"} and old.generated_env == ("WEB_CONCURRENCY",)


def test_cron_id_is_dokkus_base36_of_app_command_schedule() -> None:
    data = b"myapp===echo hi===@daily"
    got = cron_id("myapp", "echo hi", "@daily")
    assert got == got.lower() and got.isalnum()
    assert int(got, 36).to_bytes(len(data), "big") == data
    assert cron_id("a", "x", "@daily") != cron_id("b", "x", "@daily")


def test_comments_outside_strings_only() -> None:
    text = '{\n  // a comment\n  "scripts": {"dokku": {"predeploy": "curl http://x/y // not a comment", /* block */\n "postdeploy": "a /* b */"},},\n}'
    parsed = parse_app_json(text, "app.json")
    assert parsed.predeploy == "curl http://x/y // not a comment"
    assert parsed.postdeploy == "a /* b */"
    assert strip_json_comments('{"a": "\\"//"} // c') == '{"a": "\\"//"}     '


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('{"healthchecks": ', "", "invalid JSON at line 1 column 18"),
        ("[1, 2]", "", "must hold a JSON object, got an array"),
        ('{"healthchecks": {"web": {"path": "/"}}}', "healthchecks.web", "must be an array of tables"),
        ('{"healthchecks": {"web": [{"attempts": "3"}]}}', "healthchecks.web[0].attempts", 'must be a positive integer, got "3"'),
        ('{"healthchecks": {"web": [{"type": "sometimes"}]}}', "healthchecks.web[0].type", "must be one of startup"),
        ('{"cron": [{"command": "x", "schedule": "* * *"}]}', "cron[0].schedule", "must have 5 fields"),
        ('{"cron": [{"schedule": "@daily"}]}', "cron[0].command", "is required"),
        ('{"cron": {"command": "x"}}', "cron", "must be an array of tables"),
        ('{"formation": {"web": {"quantity": -1}}}', "formation.web.quantity", "must be an integer >= 0, got -1"),
        ('{"formation": {"web": {"quantity": "2"}}}', "formation.web.quantity", 'got "2"'),
        ('{"scripts": {"dokku": {"predeploy": ["a"]}}}', "scripts.dokku.predeploy", "must be a string"),
        ('{"env": {"A": 1}}', "env.A", "must be a table, got 1"),
    ],
)
def test_bad_app_json(text: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_app_json(text, "dir/app.json")
    assert any(p.file == "dir/app.json" and p.key == key and fragment in p.message for p in caught.value.problems), str(caught.value)


def test_cron_day_of_week_seven_is_sunday() -> None:
    # One cron grammar (supervisor.config.cron): app.json, TOML and the scheduler all take 0-7.
    parsed = parse_app_json('{"cron": [{"command": "x", "schedule": "0 9 * * 7"}]}', "app.json")
    assert [c.schedule for c in parsed.cron] == ["0 9 * * 7"]
    with pytest.raises(ConfigError, match='day of week field "8"'):
        parse_app_json('{"cron": [{"command": "x", "schedule": "0 9 * * 8"}]}', "app.json")


def test_lenient_where_dokku_is_lenient() -> None:
    parsed = parse_app_json(
        '{"healthchecks": {"web": [{"attempts": 0, "timeout": -1, "path": "/", "foo": 1, "type": ""}]},'
        ' "cron": [{"command": "x", "schedule": "@daily", "maintenance": true}], "formation": {"web": {"max_parallel": 2}}}',
        "app.json",
    )
    check = parsed.healthchecks["web"][0]
    assert (check.type, check.attempts, check.timeout) == ("startup", 3, 5.0)
    assert parsed.cron == () and dict(parsed.formation) == {}
    assert len(parsed.warnings) == 5


def test_empty_and_unreadable(tmp_path: Path) -> None:
    assert parse_app_json("  \n", "app.json").healthchecks == {}
    with pytest.raises(ConfigError, match="cannot read app.json"):
        load_app_json(tmp_path / "missing.json")


def test_all_check_fields() -> None:
    parsed = parse_app_json(
        '{"healthchecks": {"worker": [{"type": "liveness", "name": "n", "description": "d", "command": ["pgrep", "w"],'
        ' "port": 8000, "scheme": "HTTPS", "initialDelay": 3, "warn": true,'
        ' "onFailure": {"command": ["notify"], "url": "https://hooks.example.com/x"}}],'
        ' "web": [{"path": "/h", "httpHeaders": [{"name": "Host", "value": "example.com"}]}, {"listening": true}, {"uptime": 10}]}}',
        "app.json",
    )
    worker = parsed.healthchecks["worker"][0]
    assert worker.type == "liveness" and worker.command == ("pgrep", "w") and worker.port == 8000
    assert worker.scheme == "https" and worker.initial_delay == 3 and worker.warn
    assert any("onFailure: ignored" in w for w in parsed.warnings)
    web = parsed.healthchecks["web"]
    assert web[0].http_headers == (("Host", "example.com"),)
    assert web[1].listening and web[1].path is None
    assert web[2].uptime == 10
