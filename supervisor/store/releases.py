"""Releases and their history in SQLite (stdlib sqlite3, WAL) under state_dir.

Config is input; this is state. Docker labels remain the truth about which containers exist.
Every write is one short transaction, so a crash leaves either the old or the new row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from supervisor.model.release import Release, ReleaseKind, RepoFiles
from supervisor.store import sqlite
from supervisor.store.overlay import Overlay
from supervisor.store.secrecy import redact

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    app TEXT NOT NULL,
    number INTEGER NOT NULL,
    image TEXT NOT NULL,
    config TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (app, number)
);
CREATE TABLE IF NOT EXISTS retiring (
    container_id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    stop_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stopped (
    app TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS repo_files (
    app TEXT NOT NULL,
    number INTEGER NOT NULL,
    procfile TEXT,
    app_json TEXT,
    source TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (app, number)
);
CREATE TABLE IF NOT EXISTS canaries (
    app TEXT NOT NULL,
    number INTEGER NOT NULL,
    serving INTEGER NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    figures TEXT NOT NULL DEFAULT '{}',
    reason TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (app, number)
);
CREATE TABLE IF NOT EXISTS scale (
    app TEXT NOT NULL,
    process TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (app, process)
);
"""


def _release(row: sqlite3.Row) -> Release:
    return Release(
        app=row["app"],
        number=row["number"],
        image=row["image"],
        config=orjson.loads(row["config"]),
        kind=row["kind"],
        status=row["status"],
        reason=row["reason"],
        steps=tuple(orjson.loads(row["steps"])),
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


class StateStore:
    """The daemon's SQLite database: releases, retire timers, scale overrides."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "dockyard.db"
        self._db = sqlite.connect(self.path, SCHEMA)
        self.overlay = Overlay(self._db)

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite.transaction(self._db)

    # releases -----------------------------------------------------------------

    def begin_release(
        self, app: str, image: str, config: Mapping[str, Any], kind: ReleaseKind
    ) -> Release:
        with self._tx() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app = ?", (app,)
            ).fetchone()
            number = int(row[0])
            db.execute(
                "INSERT INTO releases (app, number, image, config, kind, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (app, number, image, orjson.dumps(config).decode(), kind, time.time()),
            )
        release = self.release(app, number)
        assert release is not None
        return release

    def activate(
        self,
        app: str,
        number: int,
        steps: Sequence[Mapping[str, Any]],
        retiring: Sequence[tuple[str, float]] = (),
    ) -> None:
        """Mark `number` the one serving release of `app`; the previous one is superseded. The
        retire timers of the containers it replaces (`retiring`: (container id, stop_at)) are
        written in the same transaction: the deploy commits both before the swap."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO retiring (container_id, app, stop_at) VALUES (?, ?, ?)",
                [(cid, app, stop_at) for cid, stop_at in retiring],
            )
            db.execute(
                "UPDATE releases SET status = 'superseded' WHERE app = ? AND status = 'active'",
                (app,),
            )
            db.execute(
                "UPDATE releases SET status = 'active', steps = ?, finished_at = ?"
                " WHERE app = ? AND number = ?",
                (orjson.dumps(steps).decode(), time.time(), app, number),
            )

    def undo_activate(
        self, app: str, number: int, previous: int | None, retiring: Sequence[str] = ()
    ) -> None:
        """The swap after `activate()` failed: `previous` serves again, the timers are gone."""
        with self._tx() as db:
            db.execute("UPDATE releases SET status = 'pending' WHERE app = ? AND number = ?",
                       (app, number))
            if previous is not None:
                db.execute("UPDATE releases SET status = 'active' WHERE app = ? AND number = ?",
                           (app, previous))
            db.executemany("DELETE FROM retiring WHERE container_id = ?", [(c,) for c in retiring])

    def fail(self, app: str, number: int, reason: str, steps: Sequence[Mapping[str, Any]]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE releases SET status = 'failed', reason = ?, steps = ?, finished_at = ?"
                " WHERE app = ? AND number = ?",
                (reason, orjson.dumps(steps).decode(), time.time(), app, number),
            )

    def fail_pending(self, reason: str) -> list[Release]:
        """Mark deploys a crash left half-way as failed (the old release keeps serving)."""
        pending = [
            _release(r)
            for r in self._db.execute("SELECT * FROM releases WHERE status = 'pending'")
        ]
        for rel in pending:
            self.fail(rel.app, rel.number, reason, rel.steps)
        return pending

    def scrub_secrets(self) -> int:
        """Replace env and build-arg values in releases written before snapshots were redacted
        (secrecy.redact); the file is then rebuilt so no old page keeps them. Returns rows changed."""
        rows = self._db.execute("SELECT app, number, config FROM releases").fetchall()
        changed = []
        for app, number, text in rows:
            config = orjson.loads(text)
            if isinstance(config, dict):
                clean = redact(config)
                if clean != config:
                    changed.append((orjson.dumps(clean).decode(), app, number))
        if changed:
            with self._tx() as db:
                db.executemany("UPDATE releases SET config = ? WHERE app = ? AND number = ?", changed)
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(changed)

    def release(self, app: str, number: int) -> Release | None:
        row = self._db.execute(
            "SELECT * FROM releases WHERE app = ? AND number = ?", (app, number)
        ).fetchone()
        return _release(row) if row else None

    def set_repo_files(self, app: str, number: int, files: RepoFiles) -> None:
        """The Procfile and app.json a release was built with (git push, --build)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO repo_files (app, number, procfile, app_json, source)"
                " VALUES (?, ?, ?, ?, ?)",
                (app, number, files.procfile, files.app_json, files.source),
            )

    def repo_files(self, app: str, number: int) -> RepoFiles | None:
        row = self._db.execute(
            "SELECT procfile, app_json, source FROM repo_files WHERE app = ? AND number = ?",
            (app, number),
        ).fetchone()
        return RepoFiles(row[0], row[1], row[2]) if row else None

    def current(self, app: str) -> Release | None:
        row = self._db.execute(
            "SELECT * FROM releases WHERE app = ? AND status = 'active'", (app,)
        ).fetchone()
        return _release(row) if row else None

    def releases(self, app: str) -> list[Release]:
        rows = self._db.execute(
            "SELECT * FROM releases WHERE app = ? ORDER BY number DESC", (app,)
        ).fetchall()
        return [_release(r) for r in rows]

    def previous_good(self, app: str) -> Release | None:
        """The newest superseded release whose image differs from the current one."""
        current = self.current(app)
        for rel in self.releases(app):
            if rel.status == "superseded" and (current is None or rel.number < current.number):
                if current is None or rel.image != current.image:
                    return rel
        return None

    def prune_releases(self, app: str, keep: int) -> list[Release]:
        """Delete `app`'s releases older than its `keep` newest, with their repository files;
        the serving release, the rollback target and a deploy in progress always stay. Returns
        what was deleted (supervisor/deploy/prune.py removes their images)."""
        current = self.current(app)
        previous = self.previous_good(app)
        spared = {r.number for r in (current, previous) if r is not None}
        doomed = [r for i, r in enumerate(self.releases(app))
                  if i >= keep and r.number not in spared and r.status != "pending"]
        if doomed:
            with self._tx() as db:
                numbers = [(app, r.number) for r in doomed]
                db.executemany("DELETE FROM releases WHERE app = ? AND number = ?", numbers)
                db.executemany("DELETE FROM repo_files WHERE app = ? AND number = ?", numbers)
                db.executemany("DELETE FROM canaries WHERE app = ? AND number = ?", numbers)
        return doomed

    def images(self) -> set[str]:
        """Every image a release of any app still names (never pruned from disk)."""
        return {r[0] for r in self._db.execute("SELECT DISTINCT image FROM releases")}

    # canaries (deploy/canary.py) ---------------------------------------------------

    def begin_canary(self, app: str, number: int, serving: int, spec: Mapping[str, Any]) -> None:
        """A canary of release `number` beside `serving` starts (state "running")."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO canaries (app, number, serving, state, spec, started_at)"
                " VALUES (?, ?, ?, 'running', ?, ?)",
                (app, number, serving, orjson.dumps(spec).decode(), time.time()),
            )

    def canary_figures(self, app: str, number: int, figures: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE canaries SET figures = ? WHERE app = ? AND number = ?",
                       (orjson.dumps(figures).decode(), app, number))

    def end_canary(self, app: str, number: int, state: str, reason: str) -> None:
        """promoted | rolled_back, with the reason that decided."""
        with self._tx() as db:
            db.execute("UPDATE canaries SET state = ?, reason = ?, finished_at = ? WHERE app = ? AND number = ?",
                       (state, reason, time.time(), app, number))

    def canaries(self, app: str | None = None, *, running: bool = False) -> list[dict[str, Any]]:
        """Canary records, newest first: app, number, serving, state, spec, figures, reason, times."""
        sql = "SELECT * FROM canaries WHERE 1"
        args: list[Any] = []
        if app is not None:
            sql += " AND app = ?"
            args.append(app)
        if running:
            sql += " AND state = 'running'"
        rows = self._db.execute(sql + " ORDER BY started_at DESC", args).fetchall()
        return [
            {"app": r["app"], "number": r["number"], "serving": r["serving"], "state": r["state"],
             "spec": orjson.loads(r["spec"]), "figures": orjson.loads(r["figures"]), "reason": r["reason"],
             "started_at": r["started_at"], "finished_at": r["finished_at"]}
            for r in rows
        ]

    # retire timers ------------------------------------------------------------

    def add_retiring(self, app: str, container_ids: list[str], stop_at: float) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO retiring (container_id, app, stop_at) VALUES (?, ?, ?)",
                [(cid, app, stop_at) for cid in container_ids],
            )

    def done_retiring(self, container_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM retiring WHERE container_id = ?", (container_id,))

    def retiring(self) -> list[tuple[str, str, float]]:
        rows = self._db.execute("SELECT container_id, app, stop_at FROM retiring").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    # scale overrides ------------------------------------------------------------

    def set_scale(self, app: str, counts: Mapping[str, int]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO scale (app, process, count) VALUES (?, ?, ?)",
                [(app, proc, n) for proc, n in counts.items()],
            )

    def scale(self, app: str) -> dict[str, int]:
        rows = self._db.execute("SELECT process, count FROM scale WHERE app = ?", (app,))
        return {r[0]: r[1] for r in rows}

    # stopped apps (dockyard stop) -------------------------------------------------

    def set_stopped(self, app: str, stopped: bool) -> None:
        with self._tx() as db:
            if stopped:
                db.execute("INSERT OR IGNORE INTO stopped (app) VALUES (?)", (app,))
            else:
                db.execute("DELETE FROM stopped WHERE app = ?", (app,))

    def is_stopped(self, app: str) -> bool:
        return self._db.execute("SELECT 1 FROM stopped WHERE app = ?", (app,)).fetchone() is not None
