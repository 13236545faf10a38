"""Per-app state an operator sets at run time, over the config file: the env overlay
(`dockyard env set`, generated secrets) and maintenance mode. Both in the daemon's SQLite
database (dockyard.db, mode 0600 in the 0700 state dir), each write one transaction.

Values of the env overlay are secrets: nothing here logs them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from proxy.routes import Maintenance
from supervisor.store import sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS env (
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app, key)
);
CREATE TABLE IF NOT EXISTS maintenance (
    app TEXT PRIMARY KEY,
    message TEXT NOT NULL DEFAULT '',
    retry_after INTEGER
);
"""


class Overlay:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.executescript(SCHEMA)

    # env ------------------------------------------------------------------------------------

    def env(self, app: str) -> dict[str, str]:
        rows = self._db.execute("SELECT key, value FROM env WHERE app = ? ORDER BY key", (app,))
        return {r[0]: r[1] for r in rows}

    def change_env(self, app: str, set_: Mapping[str, str], unset: Iterable[str] = ()) -> None:
        """Set and unset keys in one transaction: all of it or nothing."""
        with sqlite.transaction(self._db) as db:
            db.executemany("DELETE FROM env WHERE app = ? AND key = ?", [(app, k) for k in unset])
            db.executemany(
                "INSERT OR REPLACE INTO env (app, key, value) VALUES (?, ?, ?)",
                [(app, k, v) for k, v in set_.items()],
            )

    def add_env_once(self, app: str, values: Mapping[str, str]) -> dict[str, str]:
        """Insert keys not there yet (generated secrets: never replaced); the app's overlay."""
        with sqlite.transaction(self._db) as db:
            db.executemany(
                "INSERT OR IGNORE INTO env (app, key, value) VALUES (?, ?, ?)",
                [(app, k, v) for k, v in values.items()],
            )
        return self.env(app)

    # maintenance ----------------------------------------------------------------------------

    def maintenance(self, app: str) -> Maintenance | None:
        row = self._db.execute(
            "SELECT message, retry_after FROM maintenance WHERE app = ?", (app,)
        ).fetchone()
        return Maintenance(row[0], row[1]) if row else None

    def set_maintenance(self, app: str, mode: Maintenance | None) -> None:
        with sqlite.transaction(self._db) as db:
            if mode is None:
                db.execute("DELETE FROM maintenance WHERE app = ?", (app,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO maintenance (app, message, retry_after) VALUES (?, ?, ?)",
                    (app, mode.message, mode.retry_after),
                )
