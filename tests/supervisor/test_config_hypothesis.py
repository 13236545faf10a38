"""Garbage in, ConfigError out: no other exception may escape the loader, for any input."""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.config.loader import load_config, parse_config
from supervisor.model.errors import ConfigError
from supervisor.model.spec import Config

scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.sampled_from(["", "/", "*", "@daily", "5 5 5 5 5", "web", "127.0.0.1:8080", "256m", "startup", "a:/b"]),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

APP_KEYS = [
    "image", "build", "build_args", "hosts", "path_prefix", "port", "retire_after", "stop_timeout",
    "drain_timeout", "default_checks_wait", "deploy_timeout", "network", "balance", "restart", "env",
    "volumes", "app_json", "processes", "healthchecks", "cron", "limits", "predeploy", "postdeploy",
    "deploy_branch",
]
CHECK_KEYS = [
    "type", "name", "description", "path", "port", "scheme", "httpHeaders", "attempts", "timeout",
    "wait", "initialDelay", "content", "uptime", "listening", "command", "warn", "onFailure",
]
CRON_KEYS = ["id", "command", "schedule", "concurrency_policy", "timeout"]
PROXY_KEYS = ["max_body_size", "max_header_size", "client_header_timeout", "access_log", "upstream_idle_timeout"]
SERVER_KEYS = ["listen", "state_dir", "control_socket", "timezone", "instance"]


def shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts using the real key names (so validation runs deep) with random values."""
    return st.dictionaries(st.sampled_from(keys), toml_values, max_size=len(keys))


checks = st.dictionaries(st.sampled_from(["web", "worker", "x y"]), st.lists(shaped(CHECK_KEYS), max_size=3) | toml_values, max_size=2)
apps = shaped(APP_KEYS).flatmap(
    lambda app: st.fixed_dictionaries(
        {"healthchecks": checks, "cron": st.lists(shaped(CRON_KEYS), max_size=3) | toml_values}
    ).map(lambda extra: {**app, **extra})
)
configs = st.fixed_dictionaries(
    {},
    optional={
        "server": shaped(SERVER_KEYS) | toml_values,
        "proxy": shaped(PROXY_KEYS) | toml_values,
        "apps": st.dictionaries(st.sampled_from(["hello", "web", "Bad_Name", ""]), apps | toml_values, max_size=3),
        "junk": toml_values,
    },
)


def only_config_errors(call: Any) -> None:
    try:
        result = call()
    except ConfigError as e:
        assert e.problems, "a ConfigError must carry at least one problem"
        for problem in e.problems:
            assert "internal error" not in problem.message, str(problem)
    else:
        assert isinstance(result, Config)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_shaped_garbage_only_raises_config_error(data: dict[str, Any]) -> None:
    only_config_errors(lambda: parse_config(data, Path("/nonexistent/dockyard.toml")))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=10), toml_values, max_size=5))
def test_any_dict_only_raises_config_error(data: dict[str, Any]) -> None:
    only_config_errors(lambda: parse_config(data, Path("x.toml")))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_file_only_raises_config_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dockyard.toml"
        path.write_bytes(raw)
        only_config_errors(lambda: load_config(path))


TOMLISH = st.lists(
    st.sampled_from(
        ['[server]', '[apps.a]', '[[apps.a.cron]]', '[[apps.a.healthchecks.web]]', '[apps.a.processes.web]',
         'image = "a"', 'build = "git"', 'listen = "0.0.0.0:80"', 'schedule = "@daily"', 'command = "x"',
         'scale = 2', 'attempts = "three"', 'path = "/"', 'x = [1, "a"]', 'hosts = ["a.b", "*.c"]', '= 1',
         'id = "t"', 'port = 70000', '"quoted key" = 1', 'env = { A = 1 }', 'a = 1979-05-27', '[[apps]]'],
    ),
    max_size=12,
).map(lambda lines: "\n".join(lines).encode())


@settings(max_examples=100, deadline=None)
@given(TOMLISH)
def test_tomlish_text_only_raises_config_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dockyard.toml"
        path.write_bytes(raw)
        only_config_errors(lambda: load_config(path))


def test_deep_nesting_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    only_config_errors(lambda: load_config(path))


def test_dates_are_rejected_not_crashed() -> None:
    only_config_errors(lambda: parse_config({"apps": {"a": {"image": datetime.date(2020, 1, 1)}}}, Path("x.toml")))
