"""SQLite as dockyard uses it: one connection per store, WAL, short IMMEDIATE transactions.

`synchronous=FULL`: every commit is fsynced before it returns, so a power loss never rolls
back a release that was activated (and routed) before it. dockyard writes a few rows a
minute; the fsync costs nothing it would notice.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path, schema: str, timeout: float = 10.0) -> sqlite3.Connection:
    """Open (creating) the database at `path` in WAL mode and apply `schema`. `timeout`: how
    long a write waits for another connection's transaction (two daemons during a takeover)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # 0600 before SQLite opens it: its -wal and -shm files take the database file's mode.
    # (Best effort: a CLI user who does not own the file leaves it as it is.)
    with contextlib.suppress(PermissionError):
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: a crash leaves either all of it or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
