"""The SQLite schema, its version table, and the migrations that bring a file up to date.

One `jobs` table holds every job with a `state` column, so a job is in exactly one state by
construction (invariant 1). `score` plays the part of the Redis sorted-set score, so one
index `(queue, state, score)` serves every state's order: QUEUED by priority then seq,
SCHEDULED by run_at, RUNNING by lease deadline, finished states by finish time.
"""

from __future__ import annotations

import sqlite3
import time

from conveyor.errors import BrokerMisconfigured

#: (version, statements). Append only: a released migration is never edited.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """
            CREATE TABLE jobs (
                id           INTEGER PRIMARY KEY,
                queue        TEXT    NOT NULL,
                uid          TEXT    NOT NULL,
                type         TEXT    NOT NULL,
                payload      TEXT    NOT NULL,
                state        TEXT    NOT NULL,
                score        INTEGER NOT NULL,
                priority     INTEGER NOT NULL,
                seq          INTEGER NOT NULL,
                attempts     INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                timeout_ms   INTEGER,
                created_ms   INTEGER NOT NULL,
                run_at_ms    INTEGER,
                started_ms   INTEGER,
                finished_ms  INTEGER,
                deadline_ms  INTEGER,
                lease        INTEGER NOT NULL DEFAULT 0,
                token        TEXT    NOT NULL DEFAULT '',
                worker       TEXT,
                result       TEXT,
                err_code     TEXT,
                err_msg      TEXT,
                history      TEXT    NOT NULL DEFAULT '',
                idem         TEXT,
                fp           TEXT    NOT NULL DEFAULT ''
            )
            """,
            "CREATE UNIQUE INDEX jobs_by_uid ON jobs (queue, uid)",
            "CREATE INDEX jobs_by_state ON jobs (queue, state, score)",
            # the idempotency key lives on the job row: it is freed exactly when the job is
            # deleted, and two live jobs can never hold one key
            "CREATE UNIQUE INDEX jobs_by_idem ON jobs (queue, idem) WHERE idem IS NOT NULL",
            "CREATE TABLE queues (name TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0)",
            "CREATE TABLE paused (name TEXT PRIMARY KEY)",
            """
            CREATE TABLE workers (
                id           TEXT PRIMARY KEY,
                info         TEXT    NOT NULL,
                last_seen_ms INTEGER NOT NULL,
                expires_ms   INTEGER NOT NULL
            )
            """,
        ),
    ),
    (
        2,
        (
            # DEAD -> QUEUED moves of the job: bounds DLQ policies, tells deaths apart
            "ALTER TABLE jobs ADD COLUMN redrives INTEGER NOT NULL DEFAULT 0",
            # deaths whose on_dead hooks have not run yet, written in the transaction that
            # moves the job to DEAD; due_ms = when it may be claimed (death, then claim lease)
            """
            CREATE TABLE deaths (
                queue  TEXT    NOT NULL,
                uid    TEXT    NOT NULL,
                n      INTEGER NOT NULL,
                due_ms INTEGER NOT NULL,
                PRIMARY KEY (queue, uid, n)
            )
            """,
            "CREATE INDEX deaths_by_due ON deaths (queue, due_ms)",
        ),
    ),
    (
        3,
        (
            # written at ack time, read by listings instead of the result (which may be
            # megabytes): the result's first characters (the whole of a short one) and its
            # length; NULL on rows acked before (listings read their result)
            "ALTER TABLE jobs ADD COLUMN result_preview TEXT",
            "ALTER TABLE jobs ADD COLUMN result_size INTEGER",
        ),
    ),
    (
        4,
        (
            # webhook subscriptions: `record` is the JSON of webhooks.model.to_record (the
            # fields of the Redis hash), secret included
            """
            CREATE TABLE webhooks (
                id         TEXT    PRIMARY KEY,
                created_ms INTEGER NOT NULL,
                record     TEXT    NOT NULL
            )
            """,
        ),
    ),
    (
        5,
        (
            # the job event log (issue 17): one row per transition, written in the
            # transition's transaction by events.emit; ids only grow (AUTOINCREMENT), so a
            # row id is a cursor that is never reused
            """
            CREATE TABLE events (
                id      INTEGER PRIMARY KEY AUTOINCREMENT,
                queue   TEXT    NOT NULL,
                uid     TEXT    NOT NULL,
                type    TEXT    NOT NULL,
                event   TEXT    NOT NULL,
                state   TEXT    NOT NULL,
                attempt INTEGER NOT NULL,
                at_ms   INTEGER NOT NULL,
                code    TEXT,
                progress TEXT
            )
            """,
            "CREATE INDEX events_by_queue ON events (queue, id)",
            # the last progress report of the job (JSON {"value", "message", "at"})
            "ALTER TABLE jobs ADD COLUMN progress TEXT",
            # per queue: how many events its log keeps, and the largest id trimmed (gaps)
            """
            CREATE TABLE event_logs (
                queue TEXT    PRIMARY KEY,
                kept  INTEGER NOT NULL DEFAULT 0,
                cut   INTEGER NOT NULL DEFAULT 0
            )
            """,
            # followers' saved positions (the webhook fan-out), per queue and name
            """
            CREATE TABLE event_cursors (
                queue  TEXT NOT NULL,
                name   TEXT NOT NULL,
                cursor TEXT NOT NULL,
                PRIMARY KEY (queue, name)
            )
            """,
        ),
    ),
    (
        6,
        (
            # per-minute outcome counters (issue 18), bumped by ack / fail / reap in their
            # own transaction; sqlite/series.py
            """
            CREATE TABLE series (
                queue     TEXT    NOT NULL,
                minute    INTEGER NOT NULL,
                type      TEXT    NOT NULL,
                succeeded INTEGER NOT NULL DEFAULT 0,
                failed    INTEGER NOT NULL DEFAULT 0,
                dead      INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (queue, minute, type)
            ) WITHOUT ROWID
            """,
        ),
    ),
    (
        7,
        (
            # the log lines a handler wrote (`joblogs.encode_line`), oldest first by id; the
            # trigger deletes them with their job, wherever a job row is deleted (retention,
            # purge, a move to another queue)
            """
            CREATE TABLE job_logs (
                id    INTEGER PRIMARY KEY,
                job   INTEGER NOT NULL,
                line  TEXT    NOT NULL,
                bytes INTEGER NOT NULL
            )
            """,
            "CREATE INDEX job_logs_by_job ON job_logs (job, id)",
            """
            CREATE TRIGGER job_logs_with_job AFTER DELETE ON jobs
            BEGIN
                DELETE FROM job_logs WHERE job = OLD.id;
            END
            """,
        ),
    ),
    (
        8,
        (
            # schedules (issue 15): the job a tick made names its schedule and tick (NULL:
            # a manual trigger); runs are read by (queue, sched_name, uid)
            "ALTER TABLE jobs ADD COLUMN sched_name TEXT",
            "ALTER TABLE jobs ADD COLUMN sched_tick INTEGER",
            "CREATE INDEX jobs_by_schedule ON jobs (queue, sched_name, uid)"
            " WHERE sched_name IS NOT NULL",
            # one row per schedule: `def` is its canonical JSON (paused left out), `job` the
            # resolved job template (schedules/store.py), `due_ms` the next tick minus the
            # lookahead (NULL: paused or ended)
            """
            CREATE TABLE schedules (
                name       TEXT    PRIMARY KEY,
                queue      TEXT    NOT NULL,
                def        TEXT    NOT NULL,
                job        TEXT    NOT NULL,
                fp         TEXT    NOT NULL,
                tfp        TEXT    NOT NULL,
                overlap    TEXT    NOT NULL,
                paused     INTEGER NOT NULL DEFAULT 0,
                next_ms    INTEGER,
                due_ms     INTEGER,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL,
                fired      INTEGER NOT NULL DEFAULT 0,
                skipped    INTEGER NOT NULL DEFAULT 0,
                missed     INTEGER NOT NULL DEFAULT 0,
                last_tick  INTEGER,
                last_job   TEXT
            )
            """,
            "CREATE INDEX schedules_by_due ON schedules (queue, due_ms)"
            " WHERE due_ms IS NOT NULL",
        ),
    ),
    (
        9,
        (
            # a cancel request on a RUNNING job: the token of the delivery asked to stop, and
            # who asked (cancel.lua's ctok / cby)
            "ALTER TABLE jobs ADD COLUMN cancel_token TEXT",
            "ALTER TABLE jobs ADD COLUMN cancel_by TEXT",
        ),
    ),
    (
        10,
        (
            # the producer's W3C trace context, stored at enqueue (issue 18, conveyor.tracing)
            "ALTER TABLE jobs ADD COLUMN trace TEXT",
        ),
    ),
    (
        11,
        (
            # flow control (issue 16): the job's limit key, and whether it holds a permit
            # (taken by a limited fetch, given back once by the step that ends its run)
            "ALTER TABLE jobs ADD COLUMN limit_key TEXT",
            "ALTER TABLE jobs ADD COLUMN permit INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX jobs_by_limit_key ON jobs (queue, state, limit_key, score)",
            # a queue's limits (`spec`: QueueLimits JSON, NULL once deleted) and its counters:
            # RUNNING jobs holding a permit, the rate bucket (tokens, last refill), a hold
            # (RateLimited without a key), the fairness clock `vt`, and when a sleeping worker
            # should look again (`wake_ms`; `seen_seq`: the queue's seq at the last fetch),
            # and how often each limit held work back (`held`: JSON reason -> count)
            """
            CREATE TABLE queue_limits (
                queue    TEXT PRIMARY KEY,
                spec     TEXT,
                run      INTEGER NOT NULL DEFAULT 0,
                tok      REAL,
                ts       INTEGER,
                hold     INTEGER NOT NULL DEFAULT 0,
                vt       REAL    NOT NULL DEFAULT 0,
                wake_ms  INTEGER,
                seen_seq INTEGER NOT NULL DEFAULT 0,
                held     TEXT    NOT NULL DEFAULT '{}'
            )
            """,
            # per key of a limited queue: permits out, rate bucket, hold, fairness pass, and
            # whether the key had work at the last fetch (`active`)
            """
            CREATE TABLE limit_keys (
                queue  TEXT    NOT NULL,
                key    TEXT    NOT NULL,
                run    INTEGER NOT NULL DEFAULT 0,
                tok    REAL,
                ts     INTEGER,
                hold   INTEGER NOT NULL DEFAULT 0,
                pass   REAL    NOT NULL DEFAULT 0,
                active INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (queue, key)
            )
            """,
        ),
    ),
)

LATEST = MIGRATIONS[-1][0]

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_ms INTEGER NOT NULL
)
"""


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations in one write transaction; return the version reached.

    Several processes may open a new file at once: `BEGIN IMMEDIATE` makes one of them do
    the work while the others wait (busy_timeout), then find nothing left to do.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE)
        version = current_version(conn)
        if version > LATEST:
            raise BrokerMisconfigured(
                f"the SQLite file is at schema version {version}, newer than this Conveyor"
                f" supports ({LATEST}): upgrade Conveyor",
                details={"schema_version": version, "supported": LATEST},
            )
        for number, statements in MIGRATIONS:
            if number <= version:
                continue
            for sql in statements:
                conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)",
                (number, time.time_ns() // 1_000_000),
            )
            version = number
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version
