"""Repositories made before supervisor/ moved into layer packages have hooks that import
`supervisor.gitcli`, which no longer exists: the daemon rewrites every hook at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from supervisor.git import repo as gitrepo
from tests.utils import make_config

OLD_HOOK = """\
#!/usr/bin/python3
import sys
sys.path.insert(0, '/opt/dockyard')
from supervisor.gitcli import pre_receive
sys.exit(pre_receive('web', '/var/lib/dockyard/control.sock'))
"""


def test_a_hook_naming_the_old_module_path_is_rewritten_at_start(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"web": {"build": "git", "hosts": ["web.test"]}})
    [path] = gitrepo.ensure_repos(config)  # as the daemon does at start: a fresh repository
    hook = path / "hooks" / gitrepo.HOOK
    hook.write_text(OLD_HOOK)  # what an older dockyard wrote there

    assert gitrepo.ensure_repos(config) == [path]  # the next daemon start

    text = hook.read_text()
    assert "supervisor.gitcli" not in text
    assert "from supervisor.cli.git import pre_receive" in text
    # the hook really runs with the module path it names: importing it succeeds
    script = text.split("sys.exit(")[0]
    done = subprocess.run([sys.executable, "-c", script.split("\n", 1)[1]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
