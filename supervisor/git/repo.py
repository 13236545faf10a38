"""Bare git repositories that receive pushes: `<state_dir>/git/<app>.git`.

Each repository carries everything its `pre-receive` hook needs, so a plain `git push` works
with no environment variables: the hook script has the Python interpreter, the path of the
dockyard package and the control socket baked in, and `git config dockyard.socket` (set at
creation) may point it elsewhere. The hook hands each pushed ref to the daemon, which exports
the revision with `git archive` -- from the push's quarantine object directory, since a
pre-receive hook runs before git moves the new objects into the repository -- builds it and
deploys it. A non-zero exit of the hook rejects the push, so a failed build or deploy leaves the
branch where it was (and the old release serving).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from supervisor.base.files import write_atomic
from supervisor.config.validators import APP_NAME_RE
from supervisor.git import buildcontext
from supervisor.git.buildcontext import Context
from supervisor.model import defaults
from supervisor.model.errors import DeployError
from supervisor.model.spec import AppSpec, Config
from supervisor.ops import paths, trust

GIT_DIR_NAME = "git"
HOOK = "pre-receive"
ZERO_REV = "0" * 40
_REV_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # sha1 or sha256

HOOK_SCRIPT = """\
#!{python}
# dockyard pre-receive hook for app {app!r}: hands the pushed revision to the dockyard daemon,
# which builds and deploys it; a failed build or deploy rejects the push. Written by
# `dockyard git init` and at daemon start (edits are overwritten). `git config dockyard.socket
# PATH` in this repository overrides the control socket below.
import sys
sys.path.insert(0, {package_root!r})
from supervisor.cli.git import pre_receive
sys.exit(pre_receive({app!r}, {socket!r}))
"""


class GitError(DeployError):
    """A git command failed, or a push names something dockyard does not accept."""


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One line of a pre-receive hook's input: `<old-rev> <new-rev> <ref>`."""

    old: str
    new: str
    ref: str

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


def repos_dir(config: Config) -> Path:
    return config.server.state_dir / GIT_DIR_NAME


def repo_path(config: Config, app: str) -> Path:
    return repos_dir(config) / f"{app}.git"


def deploy_branches(app: AppSpec) -> tuple[str, ...]:
    return (app.deploy_branch,) if app.deploy_branch else defaults.DEPLOY_BRANCHES


def check_update(app: AppSpec, update: RefUpdate) -> None:
    """GitError unless `update` pushes a commit to one of the app's deploy branches."""
    branches = deploy_branches(app)
    wanted = " or ".join(branches)
    if update.branch not in branches:
        raise GitError(
            f"{app.name!r} deploys only from branch {wanted}; {update.ref} was not accepted "
            f"(push with `git push REMOTE HEAD:{branches[0]}`)"
        )
    if update.new == ZERO_REV:
        raise GitError(f"deleting the deploy branch {update.ref} is refused")
    if not _REV_RE.match(update.new):
        raise GitError(f"not a commit id: {update.new!r}")


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def hook_script(app: str, socket: Path, python: str | None = None) -> str:
    """The hook's text; GitError when the interpreter or the package root it names could be
    changed by a user other than root or the daemon's (the push account would run their code)."""
    package_root = str(paths.PACKAGE_ROOT)
    problem = trust.code_problem(python or sys.executable, {0, os.geteuid()},
                                 prefix=None if python else sys.prefix)
    if problem:
        raise GitError(f"refusing to write a git hook that runs {package_root}: {problem} "
                       "(a user other than root or the daemon's could change it)")
    return HOOK_SCRIPT.format(
        python=python or sys.executable, app=app, socket=str(socket), package_root=package_root
    )


def init_repo(config: Config, app: AppSpec, python: str | None = None) -> Path:
    """Create (or refresh the hook and settings of) the app's bare repository; return its path."""
    path = repo_path(config, app.name)
    if not (path / "HEAD").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--bare", "--quiet", str(path))
        _git("--git-dir", str(path), "symbolic-ref", "HEAD", f"refs/heads/{deploy_branches(app)[0]}")
    _git("--git-dir", str(path), "config", "dockyard.app", app.name)
    # A push larger than a build context may be is refused while it is received, and every
    # object is checked (git's defaults accept both).
    _git("--git-dir", str(path), "config", "receive.maxInputSize", str(config.server.max_build_context))
    _git("--git-dir", str(path), "config", "receive.fsckObjects", "true")
    _git("--git-dir", str(path), "config", "dockyard.socket", str(config.server.control_socket))
    hook = path / "hooks" / HOOK
    hook.parent.mkdir(exist_ok=True)
    # 0700: the daemon and the push account are one user (docs/git.md)
    write_atomic(hook, hook_script(app.name, config.server.control_socket, python).encode(), 0o700)
    return path


def ensure_repos(config: Config) -> list[Path]:
    """Daemon start: a repository (with a current hook) for every app with `build = "git"`."""
    return [init_repo(config, app) for app in config.apps.values() if app.build == "git"]


def _quarantine_env(repo: Path, quarantine: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    if not quarantine:
        return env
    objects = (repo / "objects").resolve()
    where = Path(quarantine).resolve()
    if not where.is_relative_to(objects) or not where.is_dir():
        raise GitError(f"quarantine directory {quarantine!r} is not inside {str(objects)!r}")
    env["GIT_OBJECT_DIRECTORY"] = str(where)
    env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str(objects)
    return env


async def export(
    repo: Path, rev: str, quarantine: str | None = None, *, state_dir: Path,
    limit: int = defaults.MAX_BUILD_CONTEXT,
) -> Context:
    """`git archive --format=tar <rev>` of the repository (seeing a push's quarantined objects),
    streamed to a file under `state_dir` and capped at `limit` bytes (buildcontext.py)."""
    if not _REV_RE.match(rev):
        raise GitError(f"not a commit id: {rev!r}")
    args = ["git", "--git-dir", str(repo), "archive", "--format=tar", rev]
    try:
        return await buildcontext.from_git(args, _quarantine_env(repo, quarantine), state_dir, limit)
    except buildcontext.ContextError as exc:
        raise GitError(f"{rev[:7]}: {exc}") from exc


def app_from_ssh_command(command: str) -> str:
    """The app named by an SSH_ORIGINAL_COMMAND such as `git-receive-pack 'app.git'` or `'/app'`."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise GitError(f"cannot parse the SSH command {command!r}: {exc}") from exc
    if words[:2] == ["git", "receive-pack"]:
        words = ["git-receive-pack", *words[2:]]
    if len(words) != 2 or words[0] != "git-receive-pack":
        raise GitError(f"only `git push` is allowed here, not {command!r}")
    name = words[1].strip("/").removesuffix(".git").rsplit("/", 1)[-1]
    if not APP_NAME_RE.match(name):
        raise GitError(f"not an app name: {words[1]!r}")
    return name
