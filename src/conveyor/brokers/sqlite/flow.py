"""Flow control on SQLite: the twin of lua/_flow.lua (same algorithm, same order), run inside
the fetch transaction, plus the permit give-back every transition out of RUNNING calls.

A queue is limited while it has a `queue_limits` row. Its QUEUED jobs grouped by `limit_key`
(NULL: the no-key group, named '') are the lanes of the Redis layout; `limit_keys` holds each
key's permits, rate bucket, hold and fairness pass. See docs/decisions.md, "Flow control".
"""

from __future__ import annotations

import heapq
import json
import math
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.brokers.base import AuditReport, KeyInfo, check_flow_counters
from conveyor.brokers.sqlite.connection import now_ms
from conveyor.flow import QueueLimits, Rate, stored_limits

_BAND = 1 << 42
_PASS = float(1 << 32)


@dataclass(slots=True)
class _Key:
    key: str
    run: int = 0
    tok: float | None = None
    ts: int | None = None
    hold: int = 0
    passed: float = 0.0
    active: bool = False
    head: int | None = None  # score of the lane head (None: no QUEUED job)
    dirty: bool = False


@dataclass(slots=True)
class _Queue:
    spec: QueueLimits | None
    run: int
    tok: float | None
    ts: int | None
    hold: int
    vt: float
    keys: dict[str, _Key] = field(default_factory=dict)


def _bucket(tok: float | None, ts: int | None, now: int, rate: Rate) -> float:
    if tok is None:
        return float(rate.burst)
    return min(tok + max(now - (ts if ts is not None else now), 0) * rate.count / rate.per_ms,
               float(rate.burst))


def _token_at(tok: float, now: int, rate: Rate) -> int:
    return now + max(math.ceil((1 - tok) * rate.per_ms / rate.count), 1)


def _weight(q: _Queue, key: str) -> int:
    if key == "" or q.spec is None or not q.spec.key_weights:
        return 1
    return q.spec.key_weights.get(key, 1)


def _key_gate(q: _Queue, k: _Key, now: int) -> tuple[bool, float | None, str]:
    """(True, tokens or None, '') when key `k` may start a job now, else (False, when to look
    again or None: at a permit, the reason)."""
    if k.hold > now:
        return False, float(k.hold), "key_hold"
    spec = q.spec
    if spec is not None and spec.key_concurrency is not None and k.run >= spec.key_concurrency:
        return False, None, "key_concurrency"
    if spec is not None and spec.key_rate is not None:
        tok = _bucket(k.tok, k.ts, now, spec.key_rate)
        if tok < 1:
            return False, float(_token_at(tok, now, spec.key_rate)), "key_rate"
        return True, tok, ""
    return True, None, ""


def _ready_score(q: _Queue, k: _Key) -> float:
    assert k.head is not None
    return float((k.head // _BAND) * _PASS + k.passed)


def limits_row(conn: sqlite3.Connection, queue: str) -> Any:
    return conn.execute(
        "SELECT spec, run, tok, ts, hold, vt FROM queue_limits WHERE queue = ?", (queue,)
    ).fetchone()


def _load(conn: sqlite3.Connection, queue: str, row: Any) -> _Queue:
    spec_text, run, tok, ts, hold, vt = row
    q = _Queue(stored_limits(spec_text), max(int(run or 0), 0), tok, ts, int(hold or 0),
               float(vt or 0))
    for key, krun, ktok, kts, khold, kpass, active in conn.execute(
        "SELECT key, run, tok, ts, hold, pass, active FROM limit_keys WHERE queue = ?",
        (queue,),
    ):
        q.keys[key] = _Key(key, max(int(krun or 0), 0), ktok, kts, int(khold or 0),
                           float(kpass or 0), bool(active))
    return q


def _lane_heads(conn: sqlite3.Connection, queue: str) -> dict[str, int]:
    """The score of each lane's head (its first QUEUED job): the no-key lane's, then one
    index seek per key with work (a loose scan of `jobs_by_limit_key`), so O(keys with work
    * log jobs), not O(queued jobs) as a GROUP BY would be."""
    heads: dict[str, int] = {}
    (none,) = conn.execute(
        "SELECT min(score) FROM jobs WHERE queue = ? AND state = 'queued' AND limit_key IS NULL",
        (queue,),
    ).fetchone()
    if none is not None:
        heads[""] = int(none)
    for key, score in conn.execute(
        "WITH RECURSIVE lane(key) AS ("
        " SELECT min(limit_key) FROM jobs WHERE queue = ?1 AND state = 'queued'"
        " AND limit_key IS NOT NULL"
        " UNION ALL SELECT (SELECT min(limit_key) FROM jobs WHERE queue = ?1"
        " AND state = 'queued' AND limit_key > lane.key) FROM lane WHERE lane.key IS NOT NULL)"
        " SELECT key, (SELECT min(score) FROM jobs WHERE queue = ?1 AND state = 'queued'"
        " AND limit_key = lane.key) FROM lane WHERE key IS NOT NULL", (queue,),
    ):
        heads[key] = int(score)
    return heads


def fetch(
    conn: sqlite3.Connection, queue: str, row: Any, count: int, now: int,
    lease: Callable[[str], bool], next_due: int | None,
) -> int | None:
    """Lease up to `count` jobs of a limited queue through its limits; `lease(key)` leases
    the head job of a key's lane (False: its row was set aside). Returns when a held job may
    next start (or the next due job, whichever is first); None: at a permit or new work."""
    q = _load(conn, queue, row)
    heads = _lane_heads(conn, queue)
    for key, k in q.keys.items():  # a key with no work left is no longer active
        if k.active and key not in heads:
            k.active, k.dirty = False, True
    for key, head in heads.items():
        k = q.keys.setdefault(key, _Key(key, dirty=True))
        k.head = head
        if not k.active:  # work again: start at the queue's clock (no credit for idleness)
            k.active, k.dirty = True, True
            k.passed = max(k.passed, q.vt)
    spec = q.spec
    gated, gate_at, leased, tries = False, None, 0, 0
    blocked_at: dict[str, float | None] = {}
    held: Counter[str] = Counter()
    # the keys with work, least (ready score, name) first; a key's score changes only when
    # it is served, and it is then pushed again, so no entry is ever stale
    ready = [(_ready_score(q, k), k.key.encode(), k.key) for k in q.keys.values()
             if k.head is not None]
    heapq.heapify(ready)
    while leased < count and tries < count + 100:
        tries += 1
        gate = ""
        if q.hold > now:
            gate, gate_at = "hold", q.hold
        elif spec is not None and spec.concurrency is not None and q.run >= spec.concurrency:
            gate = "concurrency"
        elif spec is not None and spec.rate is not None:
            q.tok, q.ts = _bucket(q.tok, q.ts, now, spec.rate), now
            if q.tok < 1:
                gate, gate_at = "rate", _token_at(q.tok, now, spec.rate)
        if gate:
            gated = True
            if ready:
                held[gate] += 1
            break
        if not ready:
            break
        k = q.keys[heapq.heappop(ready)[2]]
        ok, tok, reason = (True, None, "") if k.key == "" else _key_gate(q, k, now)
        if not ok:
            held[reason] += 1
            blocked_at[k.key] = tok
            continue
        if lease(k.key):
            leased += 1
            q.run += 1
            if spec is not None and spec.rate is not None and q.tok is not None:
                q.tok -= 1
            if k.key != "":
                k.run += 1
                if tok is not None:
                    k.tok, k.ts = tok - 1, now
            q.vt = max(q.vt, k.passed)
            k.passed += 1 / _weight(q, k.key)
        k.dirty = True
        (nxt,) = conn.execute(
            "SELECT min(score) FROM jobs WHERE queue = ? AND state = 'queued'"
            " AND limit_key IS ?", (queue, k.key or None),
        ).fetchone()
        k.head = None if nxt is None else int(nxt)
        if k.head is None:
            k.active = False
        else:
            heapq.heappush(ready, (_ready_score(q, k), k.key.encode(), k.key))
    _save(conn, queue, q, now)
    if held:
        (text,) = conn.execute("SELECT held FROM queue_limits WHERE queue = ?",
                               (queue,)).fetchone()
        conn.execute("UPDATE queue_limits SET held = ? WHERE queue = ?",
                     (json.dumps(dict(_held(text) + held)), queue))
    wake = next_due
    for at in blocked_at.values():
        if at is not None and (wake is None or at < wake):
            wake = int(at)
    # keys never looked at this call: held ones say when they are free again
    for k in q.keys.values():
        if k.head is not None and k.key not in blocked_at and k.key != "":
            ok, at, _ = _key_gate(q, k, now)
            if not ok and at is not None and (wake is None or at < wake):
                wake = int(at)
    if gate_at is not None and (wake is None or gate_at < wake):
        wake = int(gate_at)
    more = not gated and leased >= count and bool(ready)
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM queues WHERE name = ?",
                          (queue,)).fetchone()
    conn.execute("UPDATE queue_limits SET wake_ms = ?, seen_seq = ? WHERE queue = ?",
                 (now if more else wake, int(seq), queue))
    return wake


def _save(conn: sqlite3.Connection, queue: str, q: _Queue, now: int) -> None:
    conn.execute("UPDATE queue_limits SET run = ?, tok = ?, ts = ?, vt = ? WHERE queue = ?",
                 (q.run, q.tok, q.ts, q.vt, queue))
    conn.executemany(
        "INSERT INTO limit_keys (queue, key, run, tok, ts, hold, pass, active)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue, key) DO UPDATE SET"
        " run = excluded.run, tok = excluded.tok, ts = excluded.ts, hold = excluded.hold,"
        " pass = excluded.pass, active = excluded.active",
        [(queue, k.key, k.run, k.tok, k.ts, k.hold, k.passed, int(k.active))
         for k in q.keys.values() if k.dirty],
    )
    _retire(conn, queue, q.spec, now)
    _drop_if_idle(conn, queue, now)


def _retire(conn: sqlite3.Connection, queue: str, spec: QueueLimits | None, now: int) -> None:
    """Idle keys whose bucket is full again and whose hold is over: a fresh row says the same."""
    full_ms = 0
    if spec is not None and spec.key_rate is not None:
        r = spec.key_rate
        full_ms = math.ceil(r.burst * r.per_ms / r.count)
    conn.execute(
        "DELETE FROM limit_keys WHERE queue = ? AND run <= 0 AND active = 0 AND hold <= ?"
        " AND (tok IS NULL OR ts IS NULL OR ts + ? <= ?)", (queue, now, full_ms, now),
    )


def _drop_if_idle(conn: sqlite3.Connection, queue: str, now: int) -> None:
    """The limits row goes once it says nothing: no limits, no permit out, no hold."""
    conn.execute(
        "DELETE FROM queue_limits WHERE queue = ? AND spec IS NULL AND run <= 0 AND hold <= ?"
        " AND NOT EXISTS (SELECT 1 FROM limit_keys WHERE queue = ? AND (hold > ? OR run > 0))",
        (queue, now, queue, now),
    )


def give_back(conn: sqlite3.Connection, rid: int, now: int) -> None:
    """The permit a RUNNING job holds, returned once (its `permit` goes in the same step)."""
    row = conn.execute("SELECT queue, permit, limit_key FROM jobs WHERE id = ?",
                       (rid,)).fetchone()
    if row is None or row[1] != 1:
        return
    queue, _, key = row
    conn.execute("UPDATE jobs SET permit = 0 WHERE id = ?", (rid,))
    conn.execute("UPDATE queue_limits SET run = max(run - 1, 0), wake_ms = ? WHERE queue = ?",
                 (now, queue))
    if key:
        conn.execute("UPDATE limit_keys SET run = max(run - 1, 0) WHERE queue = ? AND key = ?",
                     (queue, key))


def hold(conn: sqlite3.Connection, rid: int, now: int, ms: int) -> None:
    """RateLimited: hold the job's key (its queue, without one) until now + ms."""
    row = conn.execute("SELECT queue, limit_key FROM jobs WHERE id = ?", (rid,)).fetchone()
    if row is None:
        return
    queue, key = row
    until = now + max(ms, 0)
    conn.execute("INSERT INTO queue_limits (queue) VALUES (?) ON CONFLICT (queue) DO NOTHING",
                 (queue,))
    if key:
        conn.execute(
            "INSERT INTO limit_keys (queue, key, hold) VALUES (?, ?, ?) ON CONFLICT (queue, key)"
            " DO UPDATE SET hold = max(hold, excluded.hold)", (queue, key, until))
    else:
        conn.execute("UPDATE queue_limits SET hold = max(hold, ?) WHERE queue = ?",
                     (until, queue))


def set_limits(conn: sqlite3.Connection, queue: str, limits: QueueLimits | None) -> None:
    """Set (or, with None, delete) a queue's limits; counters are kept."""
    now = now_ms()
    if limits is None:
        conn.execute("UPDATE queue_limits SET spec = NULL, wake_ms = ? WHERE queue = ?",
                     (now, queue))
        _drop_if_idle(conn, queue, now)
        return
    conn.execute(
        "INSERT INTO queue_limits (queue, spec, wake_ms) VALUES (?, ?, ?) ON CONFLICT (queue)"
        " DO UPDATE SET spec = excluded.spec, wake_ms = excluded.wake_ms",
        (queue, limits.as_json(), now),
    )


def get_limits(conn: sqlite3.Connection, queue: str) -> QueueLimits | None:
    row = conn.execute("SELECT spec FROM queue_limits WHERE queue = ?", (queue,)).fetchone()
    return None if row is None else stored_limits(row[0])


def has_work(conn: sqlite3.Connection, queue: str) -> bool | None:
    """For a limited queue: True when a held job may start now, a permit came back or new
    work arrived since the last fetch; None for a queue without limits. A later moment is
    the worker's own timer (the fetch returned it): waking for it now would spin."""
    row = conn.execute("SELECT wake_ms, seen_seq FROM queue_limits WHERE queue = ?",
                       (queue,)).fetchone()
    if row is None:
        return None
    wake, seen = row
    if wake is not None and int(wake) <= now_ms():
        return True
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM queues WHERE name = ?",
                          (queue,)).fetchone()
    return int(seq) > int(seen or 0)


def _held(text: Any) -> Counter[str]:
    """The stored reason -> count JSON; anything else reads as none."""
    try:
        data = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return Counter()
    if not isinstance(data, dict):
        return Counter()
    return Counter({str(k): v for k, v in data.items()
                    if isinstance(v, int) and not isinstance(v, bool) and v > 0})


def held_counts(conn: sqlite3.Connection, queues: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for queue in queues:
        row = conn.execute("SELECT held FROM queue_limits WHERE queue = ?", (queue,)).fetchone()
        out[queue] = dict(_held(row[0])) if row else {}
    return out


def limited_counts(conn: sqlite3.Connection, queues: list[str]) -> dict[str, int]:
    """QUEUED jobs of each limited queue (the twin of the Redis jobs in lanes)."""
    out: dict[str, int] = {}
    for queue in queues:
        if conn.execute("SELECT 1 FROM queue_limits WHERE queue = ?", (queue,)).fetchone():
            (n,) = conn.execute("SELECT count(*) FROM jobs WHERE queue = ? AND state = 'queued'",
                                (queue,)).fetchone()
            out[queue] = int(n)
        else:
            out[queue] = 0
    return out


def keys(conn: sqlite3.Connection, queue: str, limit: int, now: int) -> list[KeyInfo]:
    rows = conn.execute(
        "SELECT limit_key, count(*) AS n FROM jobs WHERE queue = ? AND state = 'queued'"
        " AND limit_key IS NOT NULL GROUP BY limit_key ORDER BY n DESC, limit_key LIMIT ?",
        (queue, limit),
    ).fetchall()
    row = limits_row(conn, queue)
    q = _load(conn, queue, row) if row is not None else None
    out = []
    for key, n in rows:
        k = q.keys.get(key, _Key(key)) if q is not None else _Key(key)
        held: int | None = None
        ok = True
        if q is not None:
            ok, at, _ = _key_gate(q, k, now)
            if not ok:
                held = int(at) if at is not None else None
        out.append(KeyInfo(key, int(n), k.run, held, not ok))
    return out


def audit(conn: sqlite3.Connection, queue: str, report: AuditReport) -> None:
    row = conn.execute("SELECT run FROM queue_limits WHERE queue = ?", (queue,)).fetchone()
    permits = {(k or ""): int(n) for k, n in conn.execute(
        "SELECT limit_key, count(*) FROM jobs WHERE queue = ? AND state = 'running'"
        " AND permit = 1 GROUP BY limit_key", (queue,))}
    stray = conn.execute("SELECT count(*) FROM jobs WHERE queue = ? AND state != 'running'"
                         " AND permit != 0", (queue,)).fetchone()[0]
    if stray:
        report.counters.append(f"{stray} job(s) not RUNNING hold a permit")
    key_runs = {k: int(r) for k, r in conn.execute(
        "SELECT key, run FROM limit_keys WHERE queue = ?", (queue,))}
    check_flow_counters(report, int(row[0]) if row else 0, key_runs, 0, permits, 0)
