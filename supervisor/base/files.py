"""Writing a file so that a reader sees the old content or the new, never half of either.

A temporary file in the same directory (so `os.replace` is a rename on one filesystem), its
mode set before any byte is written, fsync, then `os.replace`; on any failure the temporary
file is removed and the old file is left as it was. Used for private keys and certificates
(config/certs.py), git hooks (git/repo.py) and `dockyard install`'s unit, config and binary.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` (file mode `mode`) in one step; the directory must exist."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
