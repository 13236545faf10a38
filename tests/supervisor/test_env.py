"""Env and secrets without Docker: dotenv parsing, env_file validation, the precedence of the
layers, the overlay in SQLite, generated secrets, and that values never reach a release."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from supervisor.cli.env import listing, parse_assignments
from supervisor.config.dotenv import DotenvError, parse_dotenv, read_dotenv
from supervisor.config.loader import load_config
from supervisor.config.merge import environment
from supervisor.config.registries import credentials, registry_of
from supervisor.deploy import environment as env_ops
from supervisor.model.errors import ConfigError, DeployError, DockyardError, UnknownApp
from tests.fakes import fast_app, make_config, rig


def test_dotenv_forms() -> None:
    text = """
# a comment
PLAIN=value
export EXPORTED=yes
SPACED =  padded value   # trailing comment
EMPTY=
SINGLE='$HOME \\n'
DOUBLE="line1\\nline2 \\"q\\" $HOME"
HASH=a#b
EQUALS=a=b=c
"""
    assert parse_dotenv(text) == {
        "PLAIN": "value", "EXPORTED": "yes", "SPACED": "padded value", "EMPTY": "",
        "SINGLE": "$HOME \\n", "DOUBLE": 'line1\nline2 "q" $HOME', "HASH": "a#b", "EQUALS": "a=b=c",
    }


def test_dotenv_single_quotes_are_literal() -> None:
    assert parse_dotenv("A='x \\n $Y'") == {"A": "x \\n $Y"}


@pytest.mark.parametrize(("text", "message"), [
    ("NOEQUALS", "line 1: expected KEY=VALUE"),
    ("1BAD=x", "line 1: '1BAD'"),
    ('A="open', "line 1: unterminated \" quote"),
    ("OK=1\nA='x' y", "line 2: unexpected text after the closing quote"),
])
def test_dotenv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DotenvError) as caught:
        parse_dotenv(text, "secrets.env")
    assert str(caught.value).startswith("secrets.env: ") and message in str(caught.value)


def test_env_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "web.env"
    path.write_text("TOKEN=abc\n")
    os.chmod(path, 0o644)
    with pytest.raises(DotenvError, match=r"can be read by other users \(mode 0644\); chmod 600 it"):
        read_dotenv(path)
    os.chmod(path, 0o600)
    assert read_dotenv(path) == {"TOKEN": "abc"}


def _toml(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(f'[server]\nstate_dir = "state"\n[apps.web]\nimage = "w"\n{extra}\n')
    return path


def test_validate_refuses_a_readable_or_missing_env_file_naming_it(tmp_path: Path) -> None:
    secret = tmp_path / "secrets" / "web.env"
    secret.parent.mkdir()
    secret.write_text("TOKEN=abc\n")
    os.chmod(secret, 0o640)
    with pytest.raises(ConfigError) as caught:
        load_config(_toml(tmp_path, 'env_file = "secrets/web.env"'))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'dockyard.toml'}: apps.web.env_file: env file {str(secret)!r} can be read by "
        "other users (mode 0640); chmod 600 it"
    ]
    with pytest.raises(ConfigError, match="cannot read env file .*missing.env"):
        load_config(_toml(tmp_path, 'env_file = "missing.env"'))
    os.chmod(secret, 0o600)
    app = load_config(_toml(tmp_path, 'env_file = "secrets/web.env"')).apps["web"]
    assert app.env_file == str(secret) and dict(app.env) == {}  # read at deploy time


def test_an_env_file_satisfies_a_required_app_json_var(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text(json.dumps({"env": {"DATABASE_URL": {"required": True}}}))
    (tmp_path / "web.env").write_text("DATABASE_URL=postgres://db\n")
    os.chmod(tmp_path / "web.env", 0o600)
    load_config(_toml(tmp_path, 'app_json = "app.json"\nenv_file = "web.env"'))
    with pytest.raises(ConfigError, match="required env var DATABASE_URL has no value"):
        load_config(_toml(tmp_path, 'app_json = "app.json"'))


def test_precedence_overlay_then_env_file_then_config() -> None:
    assert environment({"A": "toml", "B": "toml", "C": "toml"}, {"B": "file", "C": "file"},
                       {"C": "overlay"}) == {"A": "toml", "B": "file", "C": "overlay"}


def test_parse_assignments() -> None:
    assert parse_assignments(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    for bad in ("A", "=x", "1A=x", "A-B=x"):
        with pytest.raises(DockyardError):
            parse_assignments([bad])


def test_listing_masks_unless_shown() -> None:
    rows = [{"key": "TOKEN", "value": "s3cret", "source": "overlay"}]
    assert "s3cret" not in listing(rows, False) and "********" in listing(rows, False)
    assert "s3cret" in listing(rows, True)


async def test_overlay_set_and_unset_reach_the_containers_and_never_the_release(tmp_path: Path) -> None:
    secret = tmp_path / "web.env"
    secret.write_text("FROM_FILE=file\nBOTH=file\n")
    os.chmod(secret, 0o600)
    async with rig(tmp_path, {"web": fast_app(env={"BOTH": "toml", "PLAIN": "toml"},
                                              env_file=str(secret))}) as r:
        assert (await r.deploy("web")).ok
        spec = r.runtime.running(app="web")[0].spec
        assert {k: spec.env[k] for k in ("FROM_FILE", "BOTH", "PLAIN")} == {
            "FROM_FILE": "file", "BOTH": "file", "PLAIN": "toml"}

        report = await r.sup.change_env("web", {"BOTH": "overlay", "TOKEN": "s3cret"}, [],
                                        restart=True, progress=r.progress)
        assert report is not None and report.ok and report.release == 2
        spec = r.runtime.running(app="web", release="2")[0].spec
        assert spec.env["BOTH"] == "overlay" and spec.env["TOKEN"] == "s3cret"
        rows = {row["key"]: row for row in r.sup.env_rows("web")}
        assert rows["TOKEN"] == {"key": "TOKEN", "source": "overlay", "value": None}
        assert rows["FROM_FILE"]["source"] == "env_file" and rows["PLAIN"]["source"] == "config"
        assert r.sup.env_rows("web", show=True)[0]["value"] is not None
        for release in r.state.releases("web"):  # names only, never the values
            assert "s3cret" not in json.dumps(release.config)
        assert "TOKEN" in r.current("web").config["env"]["names"]  # names + digest (store/secrecy.py)

        assert await r.sup.change_env("web", {}, ["TOKEN"], restart=False) is None
        assert r.current("web").number == 2  # --no-restart: nothing redeployed
        assert "TOKEN" not in r.sup.app("web").env and r.state.overlay.env("web") == {"BOTH": "overlay"}


async def test_bad_env_changes_change_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path, {"web": fast_app(env={"PLAIN": "toml"})}) as r:
        with pytest.raises(UnknownApp):
            await r.sup.change_env("nope", {"A": "1"}, [], restart=False)
        with pytest.raises(DeployError, match="bad env var name '1A'"):
            await r.sup.change_env("web", {"OK": "1", "1A": "x"}, [], restart=False)
        with pytest.raises(DeployError, match="PLAIN is not set by `dockyard env set` .*config"):
            await r.sup.change_env("web", {}, ["PLAIN"], restart=False)
        with pytest.raises(DeployError, match="MISSING is not set .*nowhere"):
            env_ops.refuse(r.ctx, "web", {}, ["MISSING"])
        assert r.state.overlay.env("web") == {}


async def test_a_generated_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text(json.dumps({"env": {"SECRET_KEY": {"generator": "secret"}}}))
    async with rig(tmp_path, {"web": fast_app(app_json="app.json")}) as r:
        first = r.sup.app("web").env["SECRET_KEY"]
        assert len(first) == 64 and r.state.overlay.env("web") == {"SECRET_KEY": first}
        again = r.restarted()
        assert again.sup.app("web").env["SECRET_KEY"] == first


async def test_an_env_file_gone_bad_fails_the_deploy_naming_it(tmp_path: Path) -> None:
    secret = tmp_path / "web.env"
    secret.write_text("A=1\n")
    os.chmod(secret, 0o600)
    async with rig(tmp_path, {"web": fast_app(env_file=str(secret))}) as r:
        assert (await r.deploy("web")).ok
        os.chmod(secret, 0o644)
        report = await r.deploy("web")
        assert not report.ok and "can be read by other users" in report.reason
        assert r.current("web").number == 1


def test_a_registry_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "registry.password"
    secret.write_text("pw\n")
    os.chmod(secret, 0o644)
    path = _toml(tmp_path, '[registries."r.example.com"]\nusername = "u"\npassword_file = "registry.password"')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: registries.\"r.example.com\".password_file: password file {str(secret)!r} can be read "
        "by other users (mode 0644); chmod 600 it"
    ]
    os.chmod(secret, 0o600)
    spec = load_config(path).registries["r.example.com"]
    assert credentials(spec) == {"username": "u", "password": "pw", "serveraddress": "r.example.com"}


@pytest.mark.parametrize(("image", "host"), [
    ("app:1", "docker.io"), ("team/app", "docker.io"), ("registry.example.com/team/app:1.4", "registry.example.com"),
    ("127.0.0.1:5000/app:1", "127.0.0.1:5000"), ("localhost/app", "localhost"),
])
def test_registry_of(image: str, host: str) -> None:
    assert registry_of(image) == host


async def test_a_missing_image_is_pulled_and_a_refused_pull_fails_the_deploy(tmp_path: Path) -> None:
    async with rig(tmp_path, {"web": fast_app(image="reg.test/app:1")}) as r:
        r.runtime.missing_images.update({"reg.test/app:1", "reg.test/app:2"})
        r.runtime.registry.add("reg.test/app:1")
        assert (await r.deploy("web")).ok
        assert [e["status"] for e in r.events if e["event"] == "pull"] == ["Pull complete"]
        assert [s["step"] for s in r.current("web").steps] == ["pull", "start", "checks", "swap"]
        report = await r.deploy("web", "reg.test/app:2")
        assert not report.ok and report.reason == (
            "image 'reg.test/app:2' not found locally; pulling it from reg.test failed: "
            "pull access denied for reg.test/app:2, repository does not exist")
        assert r.current("web").number == 1


async def test_a_plan_generates_no_secret(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text(json.dumps({"env": {"SECRET_KEY": {"generator": "secret"}}}))
    async with rig(tmp_path, {"web": fast_app()}) as r:
        new = make_config(tmp_path, {"web": fast_app(), "api": fast_app(app_json="app.json")})
        assert r.sup.plan(new).added == ("api",)
        assert r.state.overlay.env("api") == {}
