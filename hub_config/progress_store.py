"""The progress service's own SQLite database (under the hub's state dir, progress/progress.sqlite, mode 0600):
per user, course and module the instant checks that passed (notebook and check title) and the graded score of
the module's assignment; per user and course the completion record issued (aifw.hub_config.completion: the record
and its signed credential, one per learner and course, never replaced). Only aifw.hub_config.progress_service
opens it. Rows are validated again when read (the file is a boundary too)."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from .completion import CompletionRecord, StoredRecord
from .progress import CheckPassed, Score, ScoresPosted

SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    user TEXT NOT NULL, course TEXT NOT NULL, module TEXT NOT NULL, notebook TEXT NOT NULL, check_title TEXT NOT NULL,
    passed_at REAL NOT NULL, PRIMARY KEY (user, course, module, notebook, check_title));
CREATE TABLE IF NOT EXISTS scores (
    user TEXT NOT NULL, course TEXT NOT NULL, module TEXT NOT NULL, score REAL NOT NULL, maximum REAL NOT NULL,
    updated REAL NOT NULL, PRIMARY KEY (user, course, module));
CREATE TABLE IF NOT EXISTS records (
    verification_id TEXT PRIMARY KEY, user TEXT NOT NULL, course TEXT NOT NULL, record TEXT NOT NULL,
    token TEXT NOT NULL, UNIQUE (user, course));
"""


class ProgressStore:
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

    def add_check(self, user: str, passed: CheckPassed) -> None:
        """Remember a passed check (the first time it passed: passing again changes nothing)."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO checks VALUES (?, ?, ?, ?, ?, ?)",
                       (user, passed.course, passed.module, passed.notebook, passed.check, time.time()))

    def put_scores(self, posted: ScoresPosted) -> None:
        """Every learner's score of the assignment; a later grade replaces an earlier one."""
        now = time.time()
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
                           [(user, posted.course, posted.assignment, s.score, s.maximum, now)
                            for user, s in posted.scores.items()])

    def passed(self, course: str, user: str | None = None) -> dict[str, set[tuple[str, str, str]]]:
        """user -> {(module, notebook, check)} of the course (one user's, or everyone's)."""
        query, args = "SELECT user, module, notebook, check_title FROM checks WHERE course = ?", [course]
        if user is not None:
            query, args = query + " AND user = ?", args + [user]
        with self._db() as db:
            rows = db.execute(query, args).fetchall()
        out: dict[str, set[tuple[str, str, str]]] = {}
        for u, module, notebook, title in rows:
            row = CheckPassed(course=course, module=module, notebook=notebook, check=title)
            out.setdefault(u, set()).add((row.module, row.notebook, row.check))
        return out

    def scores(self, course: str, user: str | None = None) -> dict[str, dict[str, Score]]:
        """user -> module -> graded score, of the course (one user's, or everyone's)."""
        query, args = "SELECT user, module, score, maximum FROM scores WHERE course = ?", [course]
        if user is not None:
            query, args = query + " AND user = ?", args + [user]
        with self._db() as db:
            rows = db.execute(query, args).fetchall()
        out: dict[str, dict[str, Score]] = {}
        for u, module, score, maximum in rows:
            out.setdefault(u, {})[module] = Score(score=score, maximum=maximum)
        return out

    def add_record(self, stored: StoredRecord) -> StoredRecord:
        """Keep a learner's first record of a course; returns the one kept (an earlier one wins, so two requests at
        once still give the learner one record)."""
        r = stored.record
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?)",
                       (r.verification_id, r.learner, r.course, r.model_dump_json(), stored.token))
        kept = self.record_of(r.learner, r.course)
        if kept is None:  # a verification id drawn twice (80 random bits): never silently
            raise RuntimeError(f"the record of {r.learner} in {r.course} was not stored; try again")
        return kept

    def record_of(self, user: str, course: str) -> StoredRecord | None:
        with self._db() as db:
            row = db.execute("SELECT record, token FROM records WHERE user = ? AND course = ?", (user, course)).fetchone()
        return _stored(row)

    def record(self, verification_id: str) -> StoredRecord | None:
        with self._db() as db:
            row = db.execute("SELECT record, token FROM records WHERE verification_id = ?", (verification_id,)).fetchone()
        return _stored(row)


def _stored(row: tuple[str, str] | None) -> StoredRecord | None:
    return None if row is None else StoredRecord(record=CompletionRecord.model_validate_json(row[0]), token=row[1])
