"""Issue 18, item 10: the root service and the push account never run code a non-root user
can change: `dockyard install` refuses such a tree, and so does the git hook writer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from supervisor.cli import install as installcli
from supervisor.git import repo as gitrepo
from supervisor.model.errors import DockyardError
from supervisor.ops import trust

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
OTHER = 1000


def tree(tmp: Path) -> Path:
    top = tmp / "venv"
    (top / "bin").mkdir(parents=True)
    script = top / "bin" / "dockyard"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_untrusted_names_the_file_and_the_reason(tmp_path: Path) -> None:
    script = tree(tmp_path)
    assert trust.untrusted([script], [tmp_path / "venv"]) is None
    script.chmod(0o757)
    assert trust.untrusted([script]) == f"{script} is writable by others"
    script.chmod(0o755)
    os.chown(script.parent, OTHER, OTHER)
    assert trust.untrusted([script]) == f"{script.parent} is owned by uid {OTHER}"
    assert trust.untrusted([script], owners=(0, OTHER)) is None


def test_install_refuses_to_link_a_script_another_user_can_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tree(tmp_path)
    os.chown(script, OTHER, OTHER)
    monkeypatch.setattr(installcli.shutil, "which", lambda _name: str(script))
    target = tmp_path / "root" / "usr/local/bin/dockyard"
    with pytest.raises(DockyardError, match=f"refusing to link .*: {script} is owned by uid {OTHER}"):
        installcli._install_binary(target)
    assert not target.exists() and not target.is_symlink()
    os.chown(script, 0, 0)
    assert installcli._install_binary(target).startswith("linked")


def test_the_git_hook_refuses_an_interpreter_another_user_can_change(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.symlink_to(sys.executable)
    assert "import sys" in gitrepo.hook_script("web", tmp_path / "s.sock", str(python))
    (tmp_path / "evil").mkdir()
    os.chown(tmp_path / "evil", OTHER, OTHER)
    (tmp_path / "evil" / "python").symlink_to(sys.executable)
    # A symlink is judged by what it points at, and by the directory holding it (its owner can
    # repoint it).
    with pytest.raises(gitrepo.GitError, match=f"{tmp_path / 'evil'} is owned by uid {OTHER}"):
        gitrepo.hook_script("web", tmp_path / "s.sock", str(tmp_path / "evil" / "python"))
    writable = tmp_path / "writable"
    writable.mkdir()
    os.chmod(writable, 0o777)
    fake = writable / "python"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    with pytest.raises(gitrepo.GitError, match="refusing to write a git hook .* is writable by others"):
        gitrepo.hook_script("web", tmp_path / "s.sock", str(fake))
