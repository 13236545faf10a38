"""CLI side of builds and git pushes.

    dockyard git init APP            create <state_dir>/git/APP.git and its pre-receive hook
    dockyard git-receive-pack [APP]  for an authorized_keys `command="..."` entry (as Dokku's
                                     sshcommand): run git-receive-pack on APP's repository,
                                     APP from the argument or from SSH_ORIGINAL_COMMAND
    dockyard deploy APP --build PATH build PATH (its Dockerfile) and deploy it: `deploy_build`

`pre_receive` is what a repository's hook script runs; it prints the daemon's stream, and git
shows the pusher every line as `remote: ...`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from supervisor.cli.client import ControlClient
from supervisor.cli.common import LoadConfig, SubParsers, load
from supervisor.cli.entry import lower_priority
from supervisor.cli.exits import EXIT_FAIL, EXIT_OK, report
from supervisor.cli.stream import follow_build
from supervisor.model.errors import DockyardError

# supervisor.git.repo and supervisor.runtime.builds are imported where used: every `dockyard`
# command declares these on its parser, and only these pay for them (~35 ms).

# the hook ---------------------------------------------------------------------------------


def _git_config(key: str) -> str | None:
    try:
        done = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True, check=False)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def pre_receive(app: str, socket: str, stdin: Iterable[str] | None = None) -> int:
    """The pre-receive hook: send the pushed refs to the daemon and print what it streams.
    It yields the CPU as the `dockyard` command does (cli/entry.py): relaying a build's output
    to git runs on the server whose proxy is serving (issue #19's isolation)."""
    lower_priority()
    socket = _git_config("dockyard.socket") or socket
    updates = []
    for line in stdin if stdin is not None else sys.stdin:
        words = line.split()
        if len(words) == 3:
            updates.append({"old": words[0], "rev": words[1], "ref": words[2]})
    if not updates:
        return EXIT_OK
    quarantine = os.environ.get("GIT_QUARANTINE_PATH") or os.environ.get("GIT_OBJECT_DIRECTORY")
    body = {"updates": updates, "quarantine": quarantine}
    try:
        return follow_build(ControlClient(Path(socket)).stream(f"/v1/apps/{app}/git-push", body))
    except DockyardError as exc:  # the hook runs without `dockyard`'s main
        return report(exc)


# commands --------------------------------------------------------------------------------


def deploy_build(args: argparse.Namespace, load_config: LoadConfig = load) -> int:
    """`dockyard deploy APP --build PATH`: tar PATH here, upload it, follow build and deploy."""
    from supervisor.runtime.builds import context_tar

    config = load_config(args)
    data = context_tar(Path(args.build).resolve())
    client = ControlClient(config.server.control_socket)
    return follow_build(client.upload(f"/v1/apps/{args.app}/build-deploy", data))


def add_commands(
    sub: SubParsers, common: argparse.ArgumentParser, load_config: LoadConfig = load
) -> None:
    """Add `dockyard git init` and `dockyard git-receive-pack` to `sub`."""

    def cmd_git_init(args: argparse.Namespace) -> int:
        from supervisor.git import repo as gitrepo

        config = load_config(args)
        app = config.apps.get(args.app)
        if app is None:
            raise DockyardError(f"unknown app {args.app!r} (not in {config.path})")
        path = gitrepo.init_repo(config, app)
        branch = gitrepo.deploy_branches(app)[0]
        print(f"repository {path} (pushes to {branch} build and deploy {app.name})")
        print(f"  locally:  git remote add dockyard {path} && git push dockyard {branch}")
        print(f"  over ssh: git remote add dockyard dokku@HOST:{app.name} (see docs/git.md)")
        return EXIT_OK

    def cmd_receive_pack(args: argparse.Namespace) -> int:
        from supervisor.git import repo as gitrepo

        original = os.environ.get("SSH_ORIGINAL_COMMAND")
        asked = gitrepo.app_from_ssh_command(original) if original else None
        if args.app and asked and asked != args.app:
            raise DockyardError(f"this key may push to {args.app!r} only, not {asked!r}")
        name = args.app or asked
        if not name:
            raise DockyardError("no app: pass APP or run from an authorized_keys command= entry")
        config = load_config(args)
        app = config.apps.get(name)
        if app is None:
            raise DockyardError(f"unknown app {name!r} (not in {config.path})")
        path = gitrepo.repo_path(config, name)
        if not (path / "HEAD").is_file():
            gitrepo.init_repo(config, app)
        sys.stdout.flush()
        os.execvp("git-receive-pack", ["git-receive-pack", str(path)])
        return EXIT_FAIL  # not reached

    git = sub.add_parser("git", parents=[common], help="git push deploys", description="git push deploys")
    git_sub = git.add_subparsers(dest="git_command", metavar="COMMAND", required=True)
    p = git_sub.add_parser(
        "init", parents=[common], help="create the app's repository to push to",
        description="create <state_dir>/git/APP.git with a pre-receive hook that builds and deploys",
    )
    p.add_argument("app")
    p.set_defaults(func=cmd_git_init)
    p = sub.add_parser(
        "git-receive-pack", parents=[common], help="receive a git push (for authorized_keys command=)",
        description="run git-receive-pack on APP's repository; APP from the argument or SSH_ORIGINAL_COMMAND",
    )
    p.add_argument("app", nargs="?")
    p.set_defaults(func=cmd_receive_pack)
