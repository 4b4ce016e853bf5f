"""The grades service's own SQLite database (under the hub's state dir, lti-grades/grades.sqlite, mode 0600):
the latest launch of each learner into each course (lti_grades.LaunchRecord) and the publish queue (one
lti_grades.QueuedScore per course, assignment and learner). Only aifw.hub_config.lti_grades_service opens it.
Rows are validated again when read: the file is a boundary too."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from .lti_grades import LaunchRecord, QueuedScore

SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    user TEXT NOT NULL, course TEXT NOT NULL, record TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (user, course));
CREATE TABLE IF NOT EXISTS scores (
    course TEXT NOT NULL, assignment TEXT NOT NULL, user TEXT NOT NULL, row TEXT NOT NULL, state TEXT NOT NULL,
    updated REAL NOT NULL, PRIMARY KEY (course, assignment, user));
CREATE INDEX IF NOT EXISTS scores_state ON scores (state);
"""


class GradesStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # one transaction
                yield db
        finally:
            db.close()

    # -- launches -------------------------------------------------------------------------------
    def record_launch(self, record: LaunchRecord) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO launches VALUES (?, ?, ?, ?)",
                       (record.user, record.course, record.model_dump_json(), time.time()))

    def launch(self, user: str, course: str) -> LaunchRecord | None:
        with self._db() as db:
            row = db.execute("SELECT record FROM launches WHERE user = ? AND course = ?", (user, course)).fetchone()
        return None if row is None else LaunchRecord.model_validate_json(row[0])

    # -- the queue ------------------------------------------------------------------------------
    def score(self, course: str, assignment: str, user: str) -> QueuedScore | None:
        with self._db() as db:
            row = db.execute("SELECT row FROM scores WHERE course = ? AND assignment = ? AND user = ?",
                             (course, assignment, user)).fetchone()
        return None if row is None else QueuedScore.model_validate_json(row[0])

    def put(self, score: QueuedScore) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
                       (score.course, score.assignment, score.user, score.model_dump_json(), score.state, time.time()))

    def pending(self, limit: int, course: str | None = None, assignment: str | None = None) -> list[QueuedScore]:
        """Scores waiting for the platform (of one assignment, or all), oldest first, at most `limit`."""
        query, args = "SELECT row FROM scores WHERE state = 'pending'", []
        if course is not None:
            query += " AND course = ? AND assignment = ?"
            args += [course, assignment]
        with self._db() as db:
            rows = db.execute(query + " ORDER BY updated LIMIT ?", (*args, limit)).fetchall()
        return [QueuedScore.model_validate_json(r[0]) for r in rows]

    def count_pending(self) -> int:
        with self._db() as db:
            return db.execute("SELECT count(*) FROM scores WHERE state = 'pending'").fetchone()[0]
