"""Cron run records and suspensions in SQLite (`<state_dir>/cron.db`, WAL, stdlib sqlite3).

A scheduled run first *claims* its (app, task, scheduled time) under a UNIQUE constraint: a
daemon restart (or a second daemon on the same state) can never run the same time twice.
Manual runs (`dockyard cron run`) have no scheduled time and are never deduplicated.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from supervisor.model import defaults
from supervisor.store import sqlite

RunStatus = Literal["running", "ok", "failed", "skipped", "timeout", "replaced"]
DB_NAME = "cron.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cron_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    task TEXT NOT NULL,
    scheduled REAL,            -- epoch seconds; NULL for a manual run
    manual INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    exit_code INTEGER,
    image TEXT NOT NULL DEFAULT '',
    release INTEGER,
    container TEXT NOT NULL DEFAULT '',
    started REAL,
    ended REAL,
    output TEXT NOT NULL DEFAULT '',
    UNIQUE (app, task, scheduled)
);
CREATE INDEX IF NOT EXISTS cron_runs_task ON cron_runs (app, task, id);
CREATE TABLE IF NOT EXISTS cron_suspended (
    app TEXT NOT NULL,
    task TEXT NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (app, task)
);
"""


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    app: str
    task: str
    scheduled: float | None
    manual: bool
    status: RunStatus
    exit_code: int | None
    image: str
    release: int | None
    container: str
    started: float | None
    ended: float | None
    output: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app": self.app,
            "task": self.task,
            "scheduled": self.scheduled,
            "manual": self.manual,
            "status": self.status,
            "exit_code": self.exit_code,
            "image": self.image,
            "release": self.release,
            "container": self.container,
            "started": self.started,
            "ended": self.ended,
            "output": self.output,
        }


_COLUMNS = (
    "id, app, task, scheduled, manual, status, exit_code, image, release, container, "
    "started, ended, output"
)


def _record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0], app=row[1], task=row[2], scheduled=row[3], manual=bool(row[4]),
        status=row[5], exit_code=row[6], image=row[7], release=row[8], container=row[9],
        started=row[10], ended=row[11], output=row[12],
    )


class RunStore:
    """Every write is one short transaction."""

    def __init__(self, path: Path, keep: int = defaults.KEEP_CRON_RUNS) -> None:
        self.path = path
        self.keep = keep  # runs kept per task ([server] keep_cron_runs); older ones are deleted
        self._db = sqlite.connect(path, SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> RunStore:
        return cls(Path(state_dir) / DB_NAME)

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite.transaction(self._db)

    def claim(
        self, app: str, task: str, scheduled: float | None, status: RunStatus = "running"
    ) -> int | None:
        """Insert a run row; None when (app, task, scheduled) was claimed already."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO cron_runs (app, task, scheduled, manual, status, started) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app, task, scheduled) DO NOTHING",
                (app, task, scheduled, int(scheduled is None), status, time.time()),
            )
            if cur.rowcount == 0:
                return None
            return int(cur.lastrowid or 0)

    def started(self, run_id: int, *, image: str, release: int, container: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE cron_runs SET image = ?, release = ?, container = ? WHERE id = ?",
                (image, release, container, run_id),
            )

    def finish(
        self, run_id: int, status: RunStatus, exit_code: int | None, output: str
    ) -> RunRecord:
        with self._tx() as db:
            db.execute(
                "UPDATE cron_runs SET status = ?, exit_code = ?, output = ?, ended = ? "
                "WHERE id = ?",
                (status, exit_code, output, time.time(), run_id),
            )
        record = self.get(run_id)
        assert record is not None
        self.prune(record.app, record.task)
        return record

    def prune(self, app: str, task: str) -> int:
        """Keep the task's `keep` newest runs (and every one still running); how many went."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM cron_runs WHERE app = ? AND task = ? AND status != 'running' AND id <"
                " (SELECT MIN(id) FROM (SELECT id FROM cron_runs WHERE app = ? AND task = ?"
                " ORDER BY id DESC LIMIT ?))",
                (app, task, app, task, self.keep),
            )
            return cur.rowcount

    def get(self, run_id: int) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM cron_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return _record(row) if row else None

    def runs(self, app: str, task: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest first."""
        if task is None:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM cron_runs WHERE app = ? ORDER BY id DESC LIMIT ?",
                (app, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM cron_runs WHERE app = ? AND task = ? "
                "ORDER BY id DESC LIMIT ?",
                (app, task, limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def last(self, app: str, task: str) -> RunRecord | None:
        """The newest run that is not a skip (a skip says nothing about the task itself)."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM cron_runs WHERE app = ? AND task = ? "
            "AND status != 'skipped' ORDER BY id DESC LIMIT 1",
            (app, task),
        ).fetchone()
        return _record(row) if row else None

    def interrupted(self, note: str) -> int:
        """Mark runs a previous daemon left 'running' as failed; how many there were."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE cron_runs SET status = 'failed', ended = COALESCE(ended, ?), "
                "output = output || ? WHERE status = 'running'",
                (time.time(), note),
            )
            return cur.rowcount

    def suspend(self, app: str, task: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO cron_suspended (app, task, since) VALUES (?, ?, ?) "
                "ON CONFLICT (app, task) DO NOTHING",
                (app, task, time.time()),
            )

    def resume(self, app: str, task: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM cron_suspended WHERE app = ? AND task = ?", (app, task))

    def suspended(self) -> set[tuple[str, str]]:
        rows = self._db.execute("SELECT app, task FROM cron_suspended").fetchall()
        return {(str(a), str(t)) for a, t in rows}
