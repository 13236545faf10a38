"""`dockyard install`: the systemd unit, a config, the state directory and the binary.

Every file is written atomically (base/files.py); an existing config is kept; the binary is
this dockyard.pyz copied, or a link to a `dockyard` script only when everything the root
service would run is root-owned (ops/trust.py). `--enable` runs systemctl, only with the real
root as prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.base.files import write_atomic
from supervisor.model.errors import DockyardError
from supervisor.ops import paths, trust

UNIT_NAME = "dockyard.service"
UNIT_DIR = "etc/systemd/system"
CONFIG_DIR = "etc/dockyard"
CONFIG_NAME = "dockyard.toml"
STATE_DIR = "var/lib/dockyard"
BIN_PATH = "usr/local/bin/dockyard"


def resource(name: str) -> bytes:
    """A file of the repository's configs/ directory, from a checkout or from the .pyz."""
    path = paths.CONFIGS / name
    if path.is_file():
        return path.read_bytes()
    loader = globals().get("__loader__")
    get_data = getattr(loader, "get_data", None)
    if get_data is not None:  # inside the zipapp: zipimporter reads "<archive>/configs/NAME"
        try:
            data: bytes = get_data(str(path))
            return data
        except OSError:
            pass
    raise DockyardError(f"configs/{name} not found (run from a checkout or from dockyard.pyz)")


def installed_config(example: str) -> str:
    """The example config with the state under /var/lib/dockyard instead of next to the file."""
    out = []
    for line in example.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "state_dir":
            line = f'state_dir = "/{STATE_DIR}"          # SQLite state; see docs/operations.md'
        elif key == "control_socket":
            line = f'control_socket = "/{STATE_DIR}/control.sock"'
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class InstallReport:
    prefix: Path
    done: list[str] = field(default_factory=list)


def _running_pyz() -> Path | None:
    return paths.running_pyz()


def install(prefix: Path = Path("/"), *, enable: bool = False, binary: bool = True,
            run: Callable[[list[str]], None] | None = None) -> InstallReport:
    """Put the unit file, a config, the state directory (and the binary) under `prefix`."""
    report = InstallReport(prefix)
    unit = prefix / UNIT_DIR / UNIT_NAME
    unit_text = resource(UNIT_NAME)
    unit.parent.mkdir(parents=True, exist_ok=True)
    if unit.exists() and unit.read_bytes() == unit_text:
        report.done.append(f"unchanged {unit}")
    else:
        verb = "updated" if unit.exists() else "created"
        write_atomic(unit, unit_text, 0o644)
        report.done.append(f"{verb} {unit}")

    config = prefix / CONFIG_DIR / CONFIG_NAME
    config.parent.mkdir(parents=True, exist_ok=True)
    if config.exists():
        report.done.append(f"kept {config} (exists)")
    else:
        write_atomic(config, installed_config(resource("example.toml").decode()).encode(), 0o640)
        report.done.append(f"created {config} from configs/example.toml: edit it")

    state = prefix / STATE_DIR
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o700)
    report.done.append(f"ready {state}")

    if binary:
        report.done.append(_install_binary(prefix / BIN_PATH))

    if enable:
        if prefix.resolve() != Path("/"):
            raise DockyardError("--enable only with the real root (no --prefix): it runs systemctl")
        runner = run or _systemctl
        runner(["systemctl", "daemon-reload"])
        runner(["systemctl", "enable", "--now", UNIT_NAME])
        report.done.append(f"enabled and started {UNIT_NAME}")
    return report


def _install_binary(target: Path) -> str:
    pyz = _running_pyz()
    target.parent.mkdir(parents=True, exist_ok=True)
    if pyz is not None:
        if target.resolve() != pyz:
            write_atomic(target, pyz.read_bytes(), 0o755)
        return f"installed {target} (this dockyard.pyz)"
    if target.exists() or target.is_symlink():
        return f"kept {target} (exists)"
    script = shutil.which("dockyard") or (sys.argv[0] if Path(sys.argv[0]).name == "dockyard" else None)
    if not script:
        return f"skipped {target}: no dockyard script found; install dist/dockyard.pyz there"
    # The root service would run this script, its interpreter and the code it imports.
    problem = trust.code_problem(sys.executable, (0,), prefix=sys.prefix, deep=True) or trust.untrusted(
        [Path(script)], owners=(0,))
    if problem:
        raise DockyardError(
            f"refusing to link {target} to {Path(script).resolve()}: {problem}, so a non-root user "
            "could change what the root service runs; install dist/dockyard.pyz (copied, root-owned) "
            "or use a root-owned checkout and virtualenv")
    target.symlink_to(Path(script).resolve())
    return f"linked {target} -> {Path(script).resolve()}"


def _systemctl(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DockyardError(f"{' '.join(argv)} failed: {exc}") from exc
