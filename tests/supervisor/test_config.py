"""Valid configs: defaults, every key of the example, relative paths, and the app.json merge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from proxy.options import ProxyOptions
from supervisor.cli.summary import summarize
from supervisor.config.appjson import cron_id
from supervisor.config.loader import load_config, parse_config
from supervisor.model import defaults
from supervisor.model.spec import CronSpec, HealthCheckSpec, LimitsSpec, ProcessSpec

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tests" / "fixtures" / "configs"
DOKKU = REPO / ".." / "shared" / "fixtures" / "dokku-app-json"
needs_dokku = pytest.mark.skipif(not DOKKU.is_dir(), reason=f"Dokku fixtures not found at {DOKKU}")


def test_minimal_config_gets_every_default() -> None:
    config = load_config(CONFIGS / "minimal.toml")
    assert config.path == CONFIGS / "minimal.toml"
    assert config.server.listen == defaults.LISTEN
    assert config.server.state_dir == CONFIGS / ".dockyard"
    assert config.server.control_socket == CONFIGS / ".dockyard" / "control.sock"
    assert (config.server.timezone, config.server.instance) == ("UTC", "dockyard")
    assert config.proxy == ProxyOptions()
    app = config.apps["hello"]
    assert (app.image, app.build, app.hosts) == ("hello:1", None, ("hello.localhost",))
    assert dict(app.processes) == {"web": ProcessSpec("web", None, 1)}
    assert (app.port, app.retire_after, app.restart, app.network) == (5000, 60.0, "on-failure:10", "bridge")
    assert dict(app.healthchecks) == {} and app.cron == () and app.limits == LimitsSpec()
    assert config.warnings == ()


def test_example_config_uses_every_key() -> None:
    config = load_config(REPO / "configs" / "example.toml")
    assert config.server.listen == "127.0.0.1:8080"
    assert config.proxy.max_header_size == 16384
    hello = config.apps["hello"]
    assert hello.processes["web"] == ProcessSpec("web", "httpd -f -p $PORT -h /www", 2)
    assert hello.processes["worker"].command == ("sh", "-c", "while true; do echo tick; sleep 5; done")
    assert hello.hosts == ("hello.localhost", "*.hello.localhost")
    assert dict(hello.env) == {"GREETING": "hi", "WORKERS": "2"}
    assert hello.volumes == ("/srv/hello:/www:ro", "hello-cache:/cache")
    web = hello.healthchecks["web"][0]
    assert web.http_headers == (("Host", "hello.localhost"),)
    assert (web.attempts, web.timeout, web.wait, web.initial_delay, web.port) == (3, 5.0, 5.0, 0.0, 5000)
    assert hello.checks_for("worker", "liveness")[0].command == ("pgrep", "sh")
    assert hello.cron == (CronSpec("cleanup", "echo cleaning", "*/5 * * * *", "forbid", 300.0, "config"),)
    assert hello.limits == LimitsSpec("256m", 0.5)
    assert (hello.predeploy, hello.postdeploy, hello.deploy_branch) == ("echo before the swap", "echo after the swap", "main")
    api = config.apps["api"]
    assert api.build == str((REPO / "examples" / "api").resolve())
    assert dict(api.build_args) == {"PYTHON_VERSION": "3.11"}


def test_build_worker_fixture() -> None:
    config = load_config(CONFIGS / "build_worker.toml")
    assert config.server.state_dir == CONFIGS / "state"
    assert config.server.control_socket == Path("/tmp/dockyard-test.sock")
    jobs = config.apps["jobs"]
    assert jobs.build == str(CONFIGS / "src" / "jobs") and jobs.hosts == ()
    assert dict(jobs.processes) == {"worker": ProcessSpec("worker", ("python", "-m", "jobs"), 1)}
    assert jobs.web_scale == 0
    assert jobs.healthchecks["worker"] == (HealthCheckSpec(name="worker up", uptime=15.0),)
    [task] = jobs.cron
    assert task.id == cron_id("jobs", "python -m jobs.nightly", "@daily") and task.source == "config"


def test_path_type_means_http_startup_check_and_camel_case_maps() -> None:
    data = {
        "apps": {
            "a": {
                "image": "a",
                "healthchecks": {"web": [{"type": "path", "initialDelay": 2, "httpHeaders": [{"name": "X", "value": "1"}]}]},
            }
        }
    }
    check = parse_config(data, Path("/srv/d.toml")).apps["a"].healthchecks["web"][0]
    assert (check.type, check.path, check.initial_delay, check.http_headers) == ("startup", "/", 2.0, (("X", "1"),))


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 3 * * mon-fri", "*/15 0-6,22-23 1,15 jan-jun,dec ?", "5 5 5 5 5", "0 9 * * 7", "0 9 * * 5-7", "0 9 * * SAT,7"])
def test_good_schedules(schedule: str) -> None:
    data = {"apps": {"a": {"image": "a", "cron": [{"id": "t", "command": "true", "schedule": schedule}]}}}
    assert parse_config(data, Path("x.toml")).apps["a"].cron[0].schedule == schedule


def test_same_host_under_different_prefixes_is_fine() -> None:
    data = {
        "apps": {
            "site": {"image": "s", "hosts": ["example.com"]},
            "api": {"image": "a", "hosts": ["EXAMPLE.com"], "path_prefix": "/api"},
        }
    }
    config = parse_config(data, Path("x.toml"))
    assert config.apps["api"].hosts == ("example.com",)


@needs_dokku
def test_app_json_integration_with_absolute_path(tmp_path: Path) -> None:
    app_json = tmp_path / "app.json"
    shutil.copy(DOKKU / "python__app-cron.json", app_json)  # has // comments
    config_path = tmp_path / "dockyard.toml"
    config_path.write_text(f'[apps.py]\nbuild = "git"\nhosts = ["py.localhost"]\napp_json = "{app_json}"\n')
    app = load_config(config_path).apps["py"]
    assert app.app_json == str(app_json)
    assert app.healthchecks["web"] == (
        HealthCheckSpec(type="startup", name="check-1", path="/", content="python/http.server", attempts=2, timeout=5, wait=2),
    )
    schedule, command = "5 5 5 5 5", "python3 task.py some cron task"
    assert app.cron == (CronSpec(cron_id("py", command, schedule), command, schedule, "allow", None, "app.json"),)
    assert (app.predeploy, app.postdeploy) == ("touch /app/predeploy.test", "touch /app/postdeploy.test")
    assert "(allow; from app.json)" in summarize(load_config(config_path))


@needs_dokku
def test_toml_wins_over_app_json(tmp_path: Path) -> None:
    shutil.copy(DOKKU / "python__app-cron.json", tmp_path / "app.json")
    (tmp_path / "dockyard.toml").write_text(
        '[apps.py]\nimage = "py"\napp_json = "app.json"\npredeploy = "make migrate"\ncron = []\n'
        '[[apps.py.healthchecks.web]]\npath = "/ready"\n'
    )
    app = load_config(tmp_path / "dockyard.toml").apps["py"]
    assert app.healthchecks["web"] == (HealthCheckSpec(path="/ready"),)
    assert app.cron == ()  # a TOML cron array, even empty, replaces app.json's
    assert (app.predeploy, app.postdeploy) == ("make migrate", "touch /app/postdeploy.test")


@needs_dokku
def test_formation_sets_scale_unless_the_toml_does(tmp_path: Path) -> None:
    shutil.copy(DOKKU / "nodejs-worker__app.json", tmp_path / "app.json")
    (tmp_path / "a.toml").write_text('[apps.w]\nimage = "w"\napp_json = "app.json"\n')
    app = load_config(tmp_path / "a.toml").apps["w"]
    assert dict(app.processes) == {"web": ProcessSpec("web", None, 0), "worker": ProcessSpec("worker", None, 1)}
    assert app.web_scale == 0
    (tmp_path / "b.toml").write_text(
        '[apps.w]\nimage = "w"\napp_json = "app.json"\n[apps.w.processes.web]\nscale = 3\n'
        '[apps.w.processes.worker]\ncommand = "node worker.js"\n'
    )
    app = load_config(tmp_path / "b.toml").apps["w"]
    assert dict(app.processes) == {"web": ProcessSpec("web", None, 3), "worker": ProcessSpec("worker", "node worker.js", 1)}


def test_an_explicit_toml_scale_of_one_and_cron_list_beat_the_app_json(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text(
        '{"formation": {"web": {"quantity": 3}}, "cron": [{"command": "echo tick", "schedule": "0 9 * * 7"}]}'
    )
    (tmp_path / "a.toml").write_text('[apps.a]\nimage = "a"\napp_json = "app.json"\n')
    app = load_config(tmp_path / "a.toml").apps["a"]
    assert (app.web_scale, [c.schedule for c in app.cron]) == (3, ["0 9 * * 7"])
    assert (app.scales_given, app.cron_given) == (("web",), True)  # the config's app.json set them
    (tmp_path / "b.toml").write_text('[apps.a]\nimage = "a"\napp_json = "app.json"\ncron = []\n[apps.a.processes.web]\nscale = 1\n')
    app = load_config(tmp_path / "b.toml").apps["a"]
    assert (app.web_scale, app.cron) == (1, ())


@needs_dokku
def test_app_json_env_defaults_and_warnings(tmp_path: Path) -> None:
    shutil.copy(DOKKU / "python__app-env.json", tmp_path / "app.json")
    (tmp_path / "d.toml").write_text('[apps.e]\nimage = "e"\napp_json = "app.json"\nenv = { OBJECT_VAR = "mine" }\n')
    config = load_config(tmp_path / "d.toml")
    env = dict(config.apps["e"].env)
    assert env == {"SIMPLE_VAR": "simple_value", "OBJECT_VAR": "mine", "SYNC_VAR": "sync_value"}
    assert config.apps["e"].generate_env == ("SECRET_VAR",)  # generated once by the supervisor
    assert not any("SECRET_VAR" in w for w in config.warnings)


@needs_dokku
def test_app_json_checks_for_a_missing_process_only_warn(tmp_path: Path) -> None:
    shutil.copy(DOKKU / "python__app-traefik.json", tmp_path / "app.json")
    (tmp_path / "d.toml").write_text('[apps.e]\nimage = "e"\napp_json = "app.json"\n[apps.e.processes.worker]\n')
    config = load_config(tmp_path / "d.toml")
    assert dict(config.apps["e"].healthchecks) == {}
    assert any("healthchecks for process 'web' ignored" in w for w in config.warnings)


def test_summary_lists_apps_processes_checks_cron() -> None:
    text = summarize(load_config(REPO / "configs" / "example.toml"))
    assert "OK, 2 apps" in text
    assert "web x2: httpd -f -p $PORT -h /www" in text
    assert "web: startup 'web check' GET http://<container>:5000/ (attempts 3, timeout 5s, wait 5s)" in text
    assert "cleanup: '*/5 * * * *' echo cleaning (forbid, timeout 300s; from config)" in text
    assert "web: none (wait 10s, then must still be running)" in text
