"""Typed decoders of the Lua scripts' replies: each reply's layout is written here once (it
mirrors the `return` of its script), and the broker reads named fields, never positions.

A reply that does not have its script's shape is a bug of ours or a foreign script under
our name: it raises ValueError (an internal error), never a half-read value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.brokers.records import STATES, as_int
from conveyor.jobs import MAX_EPOCH_MS, JobState


def _parts(reply: Any, n: int, script: str) -> Sequence[Any]:
    if not isinstance(reply, list | tuple) or len(reply) < n:
        raise ValueError(f"{script}.lua replied {reply!r:.200}: expected {n} values")
    return reply


@dataclass(frozen=True, slots=True)
class LeasedRow:
    """One job a fetch leased: `{uid, token, type, payload, attempts, max_att, timeout,
    run_at, trace}` (the last two may be missing in a reply of an older script)."""

    uid: str
    token: str
    type: str
    payload: str
    attempts: int
    max_attempts: int
    timeout_ms: str | None
    due_ms: int | None
    trace: str

    @classmethod
    def decode(cls, row: Any) -> LeasedRow:
        uid, token, jtype, payload, attempts, max_att, timeout, *rest = _parts(row, 7, "fetch")
        return cls(str(uid), str(token), str(jtype), str(payload), int(attempts), int(max_att),
                   None if timeout is None else str(timeout), _due_ms(rest),
                   str(rest[1]) if len(rest) > 1 and rest[1] else "")


def _due_ms(rest: Sequence[Any]) -> int | None:
    """The run_at a fetch row carries (metrics only: a missing or odd one is no due time)."""
    text = str(rest[0]) if rest and rest[0] is not None else ""
    return int(text) if text.isdigit() and len(text) <= 15 else None


@dataclass(frozen=True, slots=True)
class FetchReply:
    """`{now, next_due (-1: none), rows, set_aside}`."""

    now_ms: int
    next_due_ms: int | None
    rows: list[LeasedRow]
    set_aside: int

    @classmethod
    def decode(cls, reply: Any) -> FetchReply:
        now, next_due, rows, aside = _parts(reply, 4, "fetch")
        due = int(next_due)
        return cls(int(now), None if due < 0 else due, [LeasedRow.decode(r) for r in rows],
                   int(aside or 0))


@dataclass(frozen=True, slots=True)
class ReapReply:
    """`{requeued, dead, set_aside, cancelled}`."""

    requeued: int
    dead: int
    set_aside: int
    cancelled: int

    @classmethod
    def decode(cls, reply: Any) -> ReapReply:
        requeued, dead, aside, cancelled = _parts(reply, 4, "reap")
        return cls(int(requeued), int(dead), int(aside or 0), int(cancelled))


@dataclass(frozen=True, slots=True)
class HeartbeatPart:
    """One heartbeat call's reply: `{lost uids, {uid, actor, uid, actor, ...}}` (the held
    leases with a cancel request, and who asked)."""

    lost: list[str]
    cancels: dict[str, str]

    @classmethod
    def decode(cls, reply: Any) -> HeartbeatPart:
        lost, flat = _parts(reply, 2, "heartbeat")
        return cls([str(u) for u in lost],
                   {str(u): str(a) for u, a in zip(flat[::2], flat[1::2], strict=True)})


@dataclass(frozen=True, slots=True)
class FoundJob:
    """The job an enqueue found in place of a new one: `{uid, fp, state, created, run_at}`.
    Its record may be damaged: then its fields read as a DEAD job with no times, and the
    client's `get` reports it as corrupt (never a crash after the batch's other jobs were
    stored)."""

    uid: str
    fingerprint: str
    state: JobState
    created_ms: int
    run_at_ms: int

    @classmethod
    def decode(cls, row: Any) -> FoundJob:
        uid, fp, st, created, run_at = _parts(row, 5, "enqueue")
        return cls(str(uid), str(fp or ""), JobState(st) if st in STATES else JobState.DEAD,
                   as_int(created, 0, MAX_EPOCH_MS) or 0, as_int(run_at, 0, MAX_EPOCH_MS) or 0)


@dataclass(frozen=True, slots=True)
class EnqueuePart:
    """One enqueue call's reply: `{now, rows, fresh}`, a row per job: its due time (an
    integer: created) or the `FoundJob` holding its idempotency key or id; `fresh` (1: the
    queue's seq counter was new, so its registry entry may be missing; a reply without it
    counts as fresh)."""

    now_ms: int
    rows: list[int | FoundJob]
    fresh: bool = True

    @classmethod
    def decode(cls, reply: Any) -> EnqueuePart:
        now, rows = _parts(reply, 2, "enqueue")[:2]
        return cls(int(now), [r if isinstance(r, int) else FoundJob.decode(r) for r in rows],
                   cls.is_fresh(reply))

    @staticmethod
    def is_fresh(reply: Any) -> bool:
        """The reply's `fresh` flag alone (no decoding of its rows)."""
        return len(_parts(reply, 2, "enqueue")) < 3 or reply[2] != 0


@dataclass(frozen=True, slots=True)
class DeadScanReply:
    """`{uids, last finish ms ('' : none), last uid, done (0/1)}`."""

    uids: list[str]
    cursor: str | None
    done: bool

    @classmethod
    def decode(cls, reply: Any) -> DeadScanReply:
        uids, last_ms, last_uid, done = _parts(reply, 4, "scan_dead")
        return cls([str(u) for u in uids], f"{last_ms}:{last_uid}" if last_ms else None,
                   bool(done))


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed death event: `{"<uid>:<death count>", type}`."""

    member: str
    type: str

    @classmethod
    def decode_all(cls, reply: Any) -> list[Claimed]:
        return [cls(str(m), str(t)) for m, t in (_parts(r, 2, "claim_deaths") for r in reply)]


@dataclass(frozen=True, slots=True)
class RetryReply:
    """`{count retried, {outcome per uid}}`: `retried`, `not_found`, `corrupt:<why>` or
    the state the job is in."""

    outcomes: list[str]

    @classmethod
    def decode(cls, reply: Any) -> RetryReply:
        _, outcomes = _parts(reply, 2, "retry")
        return cls([str(o) for o in outcomes])


@dataclass(frozen=True, slots=True)
class EventsReply:
    """`{last id of the log, first id kept, entries trimmed (0/1), rows}`; a row is
    `{id, {field, value, ...}}` (decoded by events.decode)."""

    last: str
    first: str
    trimmed: bool
    rows: list[Any]

    @classmethod
    def decode(cls, reply: Any) -> EventsReply:
        last, first, trimmed, rows = _parts(reply, 4, "read_events")
        return cls(str(last), str(first), bool(trimmed), list(rows))


@dataclass(frozen=True, slots=True)
class ForgetReply:
    """1 or 0 (emptied; it was paused / not), or, for a queue that still holds jobs (nothing
    changed), `{jobs listed, count per state in JobState order}`."""

    was_paused: bool
    #: the jobs left per state (`{"listed": n}` when only the listing holds some); None:
    #: the queue was emptied
    held: dict[str, int] | None

    @classmethod
    def decode(cls, reply: Any) -> ForgetReply:
        if not isinstance(reply, list | tuple):
            return cls(bool(int(reply)), None)
        listed, *by_state = ints(reply, len(JobState) + 1, "forget_queue")
        counts = {str(s): n for s, n in zip(JobState, by_state, strict=True) if n}
        return cls(False, counts or {"listed": listed})


def ints(reply: Any, n: int, script: str) -> list[int]:
    """A reply of exactly `n` integers (counts.lua: one count per state; ready_age.lua:
    `{now, due (-1: none)}`)."""
    got = _parts(reply, n, script)
    if len(got) != n:
        raise ValueError(f"{script}.lua replied {reply!r:.200}: expected {n} values")
    return [int(v) for v in got]


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """One schedule sched_due.lua found due: `{name, def, fingerprint, next ms}`."""

    name: str
    definition: str
    fingerprint: str
    next_ms: int


@dataclass(frozen=True, slots=True)
class DueReply:
    now_ms: int
    due: list[DueSchedule]

    @classmethod
    def decode(cls, reply: Any) -> DueReply:
        now, rows = _parts(reply, 2, "sched_due")
        return cls(int(now), [DueSchedule(str(n), str(d), str(fp), int(nx))
                              for n, d, fp, nx in (_parts(r, 4, "sched_due") for r in rows)])


@dataclass(frozen=True, slots=True)
class Fired:
    """One entry's outcome in sched_fire.lua's `{now, rows}`: `{status, uids made, skipped}`."""

    status: str
    uids: list[str]
    skipped: int

    @classmethod
    def decode_all(cls, reply: Any) -> list[Fired]:
        _, rows = _parts(reply, 2, "sched_fire")
        return [cls(str(s), [str(u) for u in made], int(k))
                for s, made, k in (_parts(r, 3, "sched_fire") for r in rows)]
