"""Where dockyard's own files are: the one place that knows the source tree's shape.

`PACKAGE_ROOT` is the directory that holds the `supervisor`, `proxy` and `scheduler` packages:
a checkout, a site-packages directory, or the `dockyard.pyz` archive itself (then it is a file).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = PACKAGE_ROOT / "configs"  # example configs and the systemd units (a checkout or the .pyz)


def running_pyz() -> Path | None:
    """The `dockyard.pyz` archive this code runs from, or None outside one."""
    return PACKAGE_ROOT if PACKAGE_ROOT.is_file() else None
