"""git push deploys on real git and real Docker: push -> pre-receive hook -> daemon -> build -> deploy.

The daemon here is the real control app (supervisor.api.control + supervisor.api.git routes) on a unix
socket in the test's event loop, with a Supervisor on the real proxy and Docker (tests.utils).
Pushes run `git push` as a subprocess with no environment but PATH and HOME.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bench.images import APP_DIR, find_static_busybox
from bench.images import dockerfile as fixture_dockerfile
from supervisor.api import git as gitcontrol
from supervisor.api.control import make_app
from supervisor.cli.git import deploy_build
from supervisor.git import repo as gitrepo
from supervisor.model.spec import AppSpec
from tests.conftest import TEST_LABELS
from tests.utils import Load, Stack, get, make_config, stack

pytestmark = pytest.mark.docker
HOST = "web.test"
PROCS_HOST = "procs.test"

CHECK = {"type": "startup", "name": "health", "path": "/health", "content": "ok",
         "attempts": 2, "timeout": 2, "wait": 0.5}


def web_app(**extra: Any) -> dict[str, Any]:
    return {
        "build": "git", "hosts": [HOST], "retire_after": 0, "stop_timeout": 1, "drain_timeout": 5,
        "deploy_timeout": 60, "processes": {"web": {"scale": 2}}, "healthchecks": {"web": [CHECK]},
        **extra,
    }


@dataclass
class Daemon:
    s: Stack
    tmp: Path

    def repo(self, app: str) -> Path:
        return gitrepo.repo_path(self.s.config, app)


@pytest.fixture
async def daemon(tmp_path: Path, docker_client: Any) -> AsyncIterator[Daemon]:
    sock_dir = Path(tempfile.mkdtemp(prefix="dy-"))  # short: unix socket paths are limited
    apps = {
        "web": web_app(),
        "procs": {"build": "git", "hosts": [PROCS_HOST], "retire_after": 0, "stop_timeout": 1,
                  "deploy_timeout": 60, "default_checks_wait": 0.5},
    }
    config = make_config(tmp_path, apps, control_socket=str(sock_dir / "c.sock"))
    async with stack(config, docker_client) as s:
        app = make_app(s.sup)
        gitcontrol.add_routes(app, lambda: s.sup, image_labels=TEST_LABELS)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.UnixSite(runner, str(config.server.control_socket)).start()
        assert {p.name for p in gitrepo.ensure_repos(config)} == {"web.git", "procs.git"}
        try:
            yield Daemon(s, tmp_path)
        finally:
            await runner.cleanup()
            shutil.rmtree(sock_dir, ignore_errors=True)


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_work(tmp: Path, name: str = "work") -> Path:
    """A working tree with the fixture app (bench/app) and a static busybox, on branch main."""
    work = tmp / name
    shutil.copytree(APP_DIR, work)
    shutil.copy2(find_static_busybox(), work / "busybox")
    git(work, "init", "-q", "-b", "main")
    return work


def commit(work: Path, version: str, *, env: str = "", files: dict[str, str] | None = None,
           dockerfile: str | None = None) -> str:
    (work / "Dockerfile").write_text(dockerfile or fixture_dockerfile(version, env))
    for name, text in (files or {}).items():
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", version)
    return git(work, "rev-parse", "HEAD")


async def push(work: Path, remote: Path, refspec: str = "HEAD:main") -> tuple[int, str]:
    """`git push` with no environment but PATH and HOME; (exit code, everything it printed)."""
    proc = await asyncio.create_subprocess_exec(
        "git", "push", str(remote), refspec, cwd=work,
        env={"PATH": os.environ["PATH"], "HOME": str(work)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def branch_rev(repo: Path, branch: str = "main") -> str | None:
    done = subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "--verify", "-q", branch],
                          capture_output=True, text=True)
    return done.stdout.strip() or None


async def serving_version(d: Daemon, host: str = HOST) -> str:
    status, body = await get(d.s.base + "/", host)
    assert status == 200, body
    return body.split()[0]


async def test_push_v1_then_v2_under_load(daemon: Daemon, docker_client: Any) -> None:
    d = daemon
    work = make_work(d.tmp)
    rev1 = commit(work, "v1")
    code, out = await push(work, d.repo("web"))
    assert code == 0, out
    assert f"remote: -----> building web:{rev1[:7]}" in out
    assert "remote:        Step 1/" in out  # the build output reaches the pusher live
    assert "remote:        checks ..." in out and "remote: =====> deployed web release 1" in out
    assert branch_rev(d.repo("web")) == rev1
    assert await serving_version(d) == "v1"
    image = docker_client.images.get(f"web:{rev1[:7]}")
    assert image.labels["dockyard.app"] == "web" and image.labels["dockyard.rev"] == rev1[:7]

    rev2 = commit(work, "v2")
    async with Load(d.s.base + "/", HOST, rate=100, workers=4) as load:
        await asyncio.sleep(0.3)
        code, out = await push(work, d.repo("web"))
        await asyncio.sleep(0.5)
    assert code == 0, out
    assert "=====> deployed web release 2" in out
    assert load.failures == [], load.failures[:5]
    assert {b.split()[0] for *_, b in load.results} == {"v1", "v2"}
    assert await serving_version(d) == "v2"
    assert branch_rev(d.repo("web")) == rev2
    release = d.s.state.current("web")
    assert release is not None and release.image == f"web:{rev2[:7]}" and release.kind == "git-push"


async def test_broken_dockerfile_rejects_the_push(daemon: Daemon) -> None:
    d = daemon
    work = make_work(d.tmp)
    rev1 = commit(work, "v1")
    assert (await push(work, d.repo("web")))[0] == 0
    broken = fixture_dockerfile("v2") + 'RUN ["/bin/busybox", "false"]\n'
    commit(work, "v2", dockerfile=broken)
    code, out = await push(work, d.repo("web"))
    assert code != 0, out
    assert "remote: =====> build of web FAILED" in out
    assert "pre-receive hook declined" in out
    assert branch_rev(d.repo("web")) == rev1  # the branch did not move
    assert await serving_version(d) == "v1"
    assert [r.number for r in d.s.state.releases("web")] == [1]  # nothing was deployed


async def test_failing_check_rejects_the_push(daemon: Daemon) -> None:
    d = daemon
    work = make_work(d.tmp)
    rev1 = commit(work, "v1")
    assert (await push(work, d.repo("web")))[0] == 0
    commit(work, "v2", env=" NEVER_HEALTHY=1")
    code, out = await push(work, d.repo("web"))
    assert code != 0, out
    assert "-----> built web:" in out
    assert "FAILED" in out and "check 'health' failed" in out
    assert "the previous release keeps serving" in out
    assert branch_rev(d.repo("web")) == rev1
    assert await serving_version(d) == "v1"
    assert [(r.number, r.status) for r in d.s.state.releases("web")] == [(2, "failed"), (1, "active")]


PROCFILE = "web: /bin/app-web\nworker: TICK=0.2 /bin/app-worker\n"
APP_JSON = """{
  // Dokku's app.json: checks per process type, cron, and a predeploy script
  "healthchecks": {
    "web": [{"type": "startup", "name": "repo-health", "path": "/health", "content": "ok",
             "attempts": 3, "wait": 0.5, "timeout": 2}],
    "worker": [{"type": "startup", "name": "worker-up", "uptime": 1, "attempts": 5, "wait": 0.5}]
  },
  "cron": [{"command": "echo tick", "schedule": "*/5 * * * *"}],
  "scripts": {"dokku": {"predeploy": "echo predeploy-ran"}}
}
"""


async def test_procfile_and_app_json_define_the_app(daemon: Daemon) -> None:
    d = daemon
    work = make_work(d.tmp)
    (work / "Procfile").write_text(PROCFILE)
    (work / "app.json").write_text(APP_JSON)
    commit(work, "v1")
    code, out = await push(work, d.repo("procs"))
    assert code == 0, out
    assert "predeploy done" in out
    rows = await d.s.sup.ps("procs")
    assert sorted((r["process"], r["status"]) for r in rows) == [("web", "running"), ("worker", "running")]
    assert await serving_version(d, PROCS_HOST) == "v1"
    release = d.s.state.current("procs")
    assert release is not None
    spec = release.config  # the spec the release was deployed with
    assert spec["processes"]["worker"]["command"] == "TICK=0.2 /bin/app-worker"
    assert [c["name"] for c in spec["healthchecks"]["web"]] == ["repo-health"]
    assert [c["name"] for c in spec["healthchecks"]["worker"]] == ["worker-up"]
    assert [(c["command"], c["schedule"], c["source"]) for c in spec["cron"]] == [
        ("echo tick", "*/5 * * * *", "app.json")
    ]
    assert spec["predeploy"] == "echo predeploy-ran"


async def test_the_pushed_definition_stays_through_restarts_reloads_and_rollbacks(daemon: Daemon) -> None:
    """What a push's Procfile and app.json define is the app's definition from then on: for
    `dockyard restart`, a daemon restart, a config reload and cron; a rollback brings back
    the files of the release it returns to."""
    from scheduler.plan import tasks_of
    from supervisor.deploy.supervisor import Supervisor

    d = daemon
    sup = d.s.sup
    seen: list[Any] = []
    sup.on_config.append(seen.append)
    work = make_work(d.tmp)
    commit(work, "v1", files={"Procfile": PROCFILE, "app.json": APP_JSON})
    code, out = await push(work, d.repo("procs"))
    assert code == 0, out
    v1 = sup.state.current("procs")
    assert v1 is not None

    def defined(s: Supervisor) -> tuple[list[str], list[str]]:
        app = s.app("procs")
        return sorted(app.processes), [c.command for c in app.cron]

    assert defined(sup) == (["web", "worker"], ["echo tick"])
    assert ("procs", sup.app("procs").cron[0].id) in tasks_of(seen[-1])  # what the scheduler gets
    # a daemon restart: a new Supervisor on the same state
    again = Supervisor(d.s.config, sup.runtime, d.s.proxy, sup.state)
    assert defined(again) == (["web", "worker"], ["echo tick"])
    # a config reload with an unchanged file changes nothing
    result = await sup.reload(d.s.config)
    assert result["plan"]["changed"] == [] and defined(sup) == (["web", "worker"], ["echo tick"])
    # `dockyard restart` keeps the worker
    report = await sup.restart("procs")
    assert report.ok, report.reason
    rows = await sup.ps("procs")
    assert sorted({r["process"] for r in rows if r["serving"]}) == ["web", "worker"]
    # a push without the worker and the cron, then a rollback to the restart's release
    commit(work, "v2", files={"Procfile": "web: /bin/app-web\n", "app.json": "{}"})
    code, out = await push(work, d.repo("procs"))
    assert code == 0, out
    assert defined(sup) == (["web"], [])
    report = await sup.rollback("procs")
    assert report.ok, report.reason
    assert defined(sup) == (["web", "worker"], ["echo tick"])
    assert await serving_version(d, PROCS_HOST) == "v1"


async def test_bad_pushes_get_a_clear_message_and_change_nothing(daemon: Daemon) -> None:
    d = daemon
    work = make_work(d.tmp)
    commit(work, "v1")
    # another branch than the deploy branch
    code, out = await push(work, d.repo("web"), "HEAD:feature")
    assert code != 0 and "deploys only from branch main or master" in out, out
    assert branch_rev(d.repo("web"), "feature") is None
    # no Dockerfile at the root
    (work / "Dockerfile").unlink()
    git(work, "commit", "-qam", "no dockerfile")
    code, out = await push(work, d.repo("web"))
    assert code != 0 and "no Dockerfile at the root" in out, out
    assert branch_rev(d.repo("web")) is None
    # a repository whose app is not (or no longer) in the config
    ghost = gitrepo.init_repo(d.s.config, AppSpec(name="ghost", image="x"))
    code, out = await push(work, ghost)
    assert code != 0 and "unknown app 'ghost'" in out, out
    assert d.s.state.releases("web") == [] and d.s.sup.serving == {}


async def test_deploy_build_from_a_local_directory(daemon: Daemon) -> None:
    d = daemon
    work = make_work(d.tmp)
    (work / "Dockerfile").write_text(fixture_dockerfile("local"))
    (work / ".dockerignore").write_text("www/cgi-bin/slow\n")
    args = argparse.Namespace(app="web", build=str(work))

    def run() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = deploy_build(args, load_config=lambda _a: d.s.config)
        return code, out.getvalue()

    code, out = await asyncio.to_thread(run)
    assert code == 0, out
    assert "-----> building web:local-" in out and "=====> deployed web release 1" in out
    assert await serving_version(d) == "local"
    assert (await get(d.s.base + "/cgi-bin/slow?ms=1", HOST))[0] == 404  # .dockerignore applied
    release = d.s.state.current("web")
    assert release is not None and release.kind == "build" and release.image.startswith("web:local-")


RUNNER = """\
import argparse, sys
sys.path.insert(0, {root!r})
from supervisor.config.loader import load_config
from supervisor.model.errors import DockyardError
from supervisor.cli.git import add_commands
common = argparse.ArgumentParser(add_help=False)
common.add_argument("-c", "--config", default=argparse.SUPPRESS)
parser = argparse.ArgumentParser(parents=[common])
add_commands(parser.add_subparsers(), common, lambda args: load_config(args.config))
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(args.func(args))
except DockyardError as exc:  # as supervisor.cli.main does
    sys.exit(f"dockyard: {{exc}}")
"""


async def test_push_over_ssh_command_entry(daemon: Daemon) -> None:
    """`git push dokku@host:web main` through an authorized_keys `command="dockyard
    git-receive-pack web"` entry, with a fake ssh that sets SSH_ORIGINAL_COMMAND as sshd does."""
    d = daemon
    server = d.s.config.server
    toml = d.tmp / "dockyard.toml"
    toml.write_text(
        f'[server]\nstate_dir = "{server.state_dir}"\ncontrol_socket = "{server.control_socket}"\n'
        '[apps.web]\nbuild = "git"\n[apps.procs]\nbuild = "git"\n'
    )
    runner = d.tmp / "dockyard_cli.py"
    runner.write_text(RUNNER.format(root=str(Path(__file__).resolve().parents[2])))
    fake_ssh = d.tmp / "fake-ssh"

    def key_for(app: str) -> None:  # what `command="..."` in authorized_keys runs for this key
        fake_ssh.write_text(
            f'#!/bin/sh\n# args: HOST COMMAND\nSSH_ORIGINAL_COMMAND="$2" exec {sys.executable} '
            f'{runner} -c {toml} git-receive-pack {app}\n'
        )
        fake_ssh.chmod(0o755)

    work = make_work(d.tmp)
    rev = commit(work, "v1")
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "GIT_SSH_COMMAND": str(fake_ssh),
           "GIT_SSH_VARIANT": "simple"}

    async def ssh_push(remote: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "git", "push", remote, "HEAD:main", cwd=work, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    key_for("procs")
    code, out = await ssh_push("dokku@host:web")
    assert code != 0 and "this key may push to 'procs' only, not 'web'" in out, out
    key_for("web")
    code, out = await ssh_push("dokku@host:web")
    assert code == 0, out
    assert "=====> deployed web release 1" in out
    assert branch_rev(d.repo("web")) == rev
    assert await serving_version(d) == "v1"
