"""Issue 18, item 9: secrets are not readable by local users (modes, release snapshots, logs)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from supervisor.deploy.report import snapshot
from supervisor.model.spec import AppSpec
from supervisor.store import secrecy
from supervisor.store.releases import StateStore
from tests.supervisor.test_deploy_docker import app_def
from tests.utils import make_config, stack

SECRET = "postgres://app:hunter2-s3cret@db/app"
TOKEN = "npm_tok3n_s3cret"


def secret_app(**extra: Any) -> AppSpec:
    return AppSpec(
        name="shop", image="x",
        env=MappingProxyType({"DATABASE_URL": SECRET, **extra}),
        build_args=MappingProxyType({"NPM_TOKEN": TOKEN}),
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def files_bytes(state_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state_dir.iterdir() if p.is_file())


def test_a_release_snapshot_keeps_names_and_a_digest_never_values() -> None:
    snap = snapshot(secret_app())
    text = orjson.dumps(snap)
    assert SECRET.encode() not in text and TOKEN.encode() not in text
    assert snap["env"]["names"] == ["DATABASE_URL"] and snap["build_args"]["names"] == ["NPM_TOKEN"]
    assert snap["env"]["digest"].startswith("sha256:")
    assert snapshot(secret_app(EXTRA="1"))["env"]["digest"] != snap["env"]["digest"]


def test_the_database_file_is_0600_and_holds_no_env_value(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = StateStore(tmp_path / "state")
        store.begin_release("shop", "img", snapshot(secret_app()), "deploy")
        store.close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "state" / "dockyard.db") == 0o600
    assert SECRET.encode() not in files_bytes(tmp_path / "state")


def test_old_release_rows_are_scrubbed_from_the_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    legacy = {"name": "shop", "env": {"DATABASE_URL": SECRET}, "build_args": {"NPM_TOKEN": TOKEN}}
    store.begin_release("shop", "img", legacy, "deploy")  # as an older dockyard wrote it
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert SECRET.encode() in files_bytes(tmp_path / "state")
    assert store.scrub_secrets() == 1
    assert store.scrub_secrets() == 0
    config = store.releases("shop")[0].config
    assert config["env"] == {"names": ["DATABASE_URL"], "digest": secrecy.digest({"DATABASE_URL": SECRET})}
    store.close()
    data = files_bytes(tmp_path / "state")
    assert SECRET.encode() not in data and TOKEN.encode() not in data


def test_secure_state_dir_sets_umask_and_fixes_existing_modes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    hooks = state / "git" / "a.git" / "hooks"
    hooks.mkdir(parents=True)
    state.chmod(0o755)
    (state / "dockyard.db").write_text("x")
    (state / "dockyard.db").chmod(0o644)
    (hooks / "pre-receive").write_text("#!/bin/sh\n")
    (hooks / "pre-receive").chmod(0o755)
    (state / "link").symlink_to("/etc/hostname")
    old = os.umask(0o022)
    try:
        assert secrecy.secure_state_dir(state) >= 4
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(old)
    assert mode(state) == 0o700 and mode(state / "git") == 0o700
    assert mode(state / "dockyard.db") == 0o600
    assert mode(hooks / "pre-receive") == 0o700  # still executable by its owner
    assert mode(Path("/etc/hostname")) != 0o600  # a symlink is not followed
    assert secrecy.secure_state_dir(state) == 0


@pytest.mark.docker
async def test_predeploy_output_is_not_logged_at_info(
    tmp_path: Path, docker_client: Any, app_images: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_def(app_images["v1"], processes={"web": {"scale": 1}}, env={"TOKEN": TOKEN},
                  predeploy="echo token=$TOKEN")
    config = make_config(tmp_path, {"web": app})
    caplog.set_level(logging.INFO, logger="dockyard")
    async with stack(config, docker_client) as s:
        assert (await s.sup.deploy("web")).ok
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and TOKEN in r.getMessage()]
    assert TOKEN.encode() not in files_bytes(config.server.state_dir)
