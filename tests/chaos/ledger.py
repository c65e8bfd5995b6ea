"""The ledger: a SQLite file, out of reach of every fault, where handlers record each run.

Worker processes append one row when a handler starts and one when it completes (the work was
done and its outcome handed to the worker); the test reads them all back to reconcile against
the broker. SQLite in WAL mode survives the SIGKILL of any writer: a committed row stays.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

#: Environment variable naming the ledger file, set by the test on every worker it starts.
LEDGER_ENV = "CHAOS_LEDGER"
#: Set to "1" on a worker to arm the crash points of `chaos_app` (test-only).
CRASH_ENV = "CHAOS_CRASH_HOOKS"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    event TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job_id);
"""


class Event(StrEnum):
    START = "start"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Run:
    """One ledger row. `token` is the delivery's lease token ('' if it was not available);
    `at` is the host's wall clock, used only for the figures, never for correctness."""

    job_id: str
    attempt: int
    token: str
    pid: int
    worker_id: str
    event: Event
    at: float

    @property
    def token_n(self) -> int:
        return int(self.token) if self.token.isdigit() else -1


class Ledger:
    """One connection to the ledger file; each `record` is its own committed transaction."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record(
        self, job_id: str, attempt: int, token: str, pid: int, worker_id: str, event: Event
    ) -> None:
        self._db.execute(
            "INSERT INTO runs (job_id, attempt, token, pid, worker_id, event, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, attempt, token, pid, worker_id, str(event), time.time()),
        )

    def runs(self) -> list[Run]:
        rows = self._db.execute(
            "SELECT job_id, attempt, token, pid, worker_id, event, at FROM runs ORDER BY id"
        ).fetchall()
        return [Run(j, int(a), str(t), int(p), str(w), Event(e), float(at))
                for j, a, t, p, w, e, at in rows]

    def by_job(self) -> dict[str, list[Run]]:
        out: dict[str, list[Run]] = {}
        for run in self.runs():
            out.setdefault(run.job_id, []).append(run)
        return out
