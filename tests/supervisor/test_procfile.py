"""Procfile parsing with dokku/procfile-util's rules, against Dokku's test apps."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.procfile import load_procfile, parse_procfile
from supervisor.model.errors import ConfigError

DOKKU = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "dokku-app-json"
needs_dokku = pytest.mark.skipif(not DOKKU.is_dir(), reason=f"Dokku fixtures not found at {DOKKU}")

HUGINN = {"cron": "node worker.js", "web": "node web.js", "worker": "node worker.js"}
EXPECTED: dict[str, dict[str, str]] = {
    "config__Procfile": {"web": "python3 -u web.py"},
    "dockerfile-entrypoint__Procfile": {"web": "sleep 1000"},
    "dockerfile-procfile__Procfile": {**HUGINN, "release": "node release.js"},
    "dockerfile-procfile__second.Procfile": HUGINN,
    "gitsubmodules__Procfile": {"web": "node node-js-sample/index.js"},
    "go-fail-postdeploy__Procfile": {"web": "/go/bin/web"},
    "go-fail-predeploy__Procfile": {"web": "/go/bin/web"},
    "java__Procfile": {"web": "java -cp target/classes:target/dependency/* HelloWorld"},
    "multi__Procfile": {"web": "python app.py"},
    "nodejs-express__Procfile": {**HUGINN, "custom": "echo -n", "release": "touch /app/release.test"},
    "nodejs-worker__Procfile": {"worker": "node worker.js"},
    "php__Procfile": {"web": "vendor/bin/heroku-php-apache2 web/"},
    "python-flask__Procfile": {"web": "gunicorn hello:app"},
    "python__Procfile": {
        "cron": "python3 worker.py",
        "web": "python3 web.py",
        "worker": "python3 worker.py",
        "custom": "echo -n",
        "release": "touch /app/release.test",
    },
    "python__exec.Procfile": {"task": "echo 'hi dokku'"},
    "python__second.Procfile": {"web": "python3 -u web.py second.Procfile"},
    "python__sub-app__Procfile": {"web": "python3 web.py", "release": "python3 -u release.py"},
    "python__worker.Procfile": {"worker": "python3 -u worker.py"},
    "ruby__Procfile": {"web": "bundle exec ruby web.rb -p $PORT"},
    "zombies-buildpack__Procfile": {"web": "bin/web"},
}


@needs_dokku
def test_every_fixture_is_covered() -> None:
    on_disk = {p.name for p in DOKKU.glob("*Procfile")}
    assert on_disk == set(EXPECTED) | {"dockerfile-procfile-bad__Procfile"}


@needs_dokku
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dokku_procfile(name: str) -> None:
    procfile = load_procfile(DOKKU / name)
    assert list(procfile.items()) == list(EXPECTED[name].items())  # file order kept
    assert procfile.warnings == ()


@needs_dokku
def test_bad_procfile_is_rejected_like_dokku_with_every_line() -> None:
    path = DOKKU / "dockerfile-procfile-bad__Procfile"
    with pytest.raises(ConfigError) as caught:
        load_procfile(path)
    assert [p.key for p in caught.value.problems] == ["line 8", "line 10", "line 11", "line 12"]
    assert all(p.file == str(path) for p in caught.value.problems)
    text = str(caught.value)
    assert "line 8: invalid line in Procfile (an unresolved git merge conflict marker?)" in text
    assert "line 11: process names must be unique: 'worker' is already defined on line 9" in text


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("web: node web.js # testing inline comment", "node web.js"),
        ("web: echo a # b # c", "echo a # b"),  # greedy, as procfile-util's ^(.*)\s#.+$
        ("web: echo a#b", "echo a#b"),  # no whitespace before '#': kept
        ("web: curl http://x/y", "curl http://x/y"),
        ("web: run // note", "run"),
        ("  web:run  ", "run"),
        ("web-2_x: run\r", "run"),
    ],
)
def test_inline_comments_and_spacing(line: str, command: str) -> None:
    procfile = parse_procfile(line, "Procfile")
    assert list(procfile.values()) == [command]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no entries found in Procfile"),
        ("# only a comment\n\n// and another", "no entries found in Procfile"),
        ("web", "line 1: invalid line in Procfile"),
        ("web:", "line 1: invalid line in Procfile"),
        ("web: # nothing", "line 1: comment specified in place of a command for 'web'"),
        ("we b: x", "line 1: invalid line in Procfile"),
        ("a" * 64 + ": x", "line 1: process name over 63 characters"),
        ("web: a\nweb: b", "line 2: process names must be unique: 'web' is already defined on line 1"),
    ],
)
def test_invalid_procfiles(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_procfile(text, "app/Procfile")
    assert str(caught.value).startswith("app/Procfile: ")
    assert fragment in str(caught.value)


def test_non_strict_names_warn() -> None:
    procfile = parse_procfile("Web_1: run", "Procfile")
    assert dict(procfile) == {"Web_1": "run"}
    assert "not a lowercase DNS label" in procfile.warnings[0]


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read Procfile"):
        load_procfile(tmp_path / "Procfile")
