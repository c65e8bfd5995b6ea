"""The Broker protocol: one method per transition of the job state machine (see docs/design.md).

Every backend implements all of it with the same semantics, and `tests/brokers` (the
conformance suite) runs against each. Batch methods take lists so a worker can send many
acks or heartbeats in one round trip; each item succeeds or is rejected on its own.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from conveyor.errors import InvalidState, QueueNotFound, ValidationError
from conveyor.events.model import JobEvent
from conveyor.flow import QueueLimits
from conveyor.ids import UID_RE
from conveyor.jobs import MAX_PROGRESS_MESSAGE, Delivery, EnqueueResult, Job, JobSpec, JobState
from conveyor.queues import TYPE_NAME_RE


@dataclass(frozen=True, slots=True)
class FetchBatch:
    deliveries: list[Delivery]
    now_ms: int
    #: run_at of the earliest scheduled job, so an idle worker can sleep exactly until then
    next_due_ms: int | None


@dataclass(frozen=True, slots=True)
class AckItem:
    job_id: str
    token: str
    result_json: str = "null"


@dataclass(frozen=True, slots=True)
class FailItem:
    job_id: str
    token: str
    error_code: str
    message: str
    traceback: str = ""
    #: None: do not retry (DEAD). Otherwise retry after this delay if attempts remain.
    retry_delay_ms: int | None = None


@dataclass(frozen=True, slots=True)
class LeaseRef:
    job_id: str
    token: str


@dataclass(frozen=True, slots=True)
class LogAppend:
    """Log lines (`joblogs.encode_line`) a running job's handler wrote, sent by the holder
    of its lease."""

    job_id: str
    token: str
    lines: Sequence[str]


@dataclass(frozen=True, slots=True)
class ProgressItem:
    """`ctx.progress(value, message)` of the lease holder (see `check_progress`)."""

    job_id: str
    token: str
    value: float
    message: str | None = None


def check_progress(value: float, message: str | None) -> tuple[str, str]:
    """The value as the brokers store it (plain decimal text) and the message ('' for none);
    anything else is a ValidationError."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0 or value > 1e15):
        raise ValidationError("progress value must be a finite number from 0 to 1e15",
                              details={"value": repr(value)[:40]})
    if message is not None and (not isinstance(message, str)
                                or len(message) > MAX_PROGRESS_MESSAGE):
        raise ValidationError(f"progress message must be text of at most "
                              f"{MAX_PROGRESS_MESSAGE} characters")
    number = float(value)
    text = str(int(number)) if number.is_integer() else f"{number:.6f}".rstrip("0").rstrip(".")
    return text, message or ""


@dataclass(frozen=True, slots=True)
class ReapResult:
    requeued: int = 0
    dead: int = 0
    #: expired leases of jobs asked to stop (`cancel` of a RUNNING job): CANCELLED, not requeued
    cancelled: int = 0


class HeartbeatReply(list[str]):
    """What `heartbeat` answers: the ids whose lease was lost (the list itself, so callers that
    only want those read it as before), and `cancel_requested`: job id -> actor, for held jobs
    an operator asked to stop (`cancel` of a RUNNING job). The holder stops the handler and
    calls `cancel_running`."""

    def __init__(self, lost: Sequence[str] = (), cancel_requested: dict[str, str] | None = None,
                 ) -> None:
        super().__init__(lost)
        self.cancel_requested: dict[str, str] = dict(cancel_requested or {})


@dataclass(slots=True)
class AuditReport:
    queue: str
    jobs_seen: int = 0
    #: job ids found in no state index
    orphans: list[str] = field(default_factory=list)
    #: job ids found in two or more indexes
    duplicates: list[str] = field(default_factory=list)
    #: ids whose index disagrees with the state field of the record
    mismatched: list[str] = field(default_factory=list)
    #: index members with no job record
    dangling: list[str] = field(default_factory=list)
    #: records missing from the listing index (invisible to list_jobs)
    unlisted: list[str] = field(default_factory=list)
    #: flow-control counters that disagree with the RUNNING jobs holding permits
    #: ("queue run 3 != 2 permits", "key 'acme' run 1 != 0 permits", "lanes n 4 != 5")
    counters: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.orphans or self.duplicates or self.mismatched or self.dangling or self.unlisted
            or self.counters
        )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One limit key of a queue (flow control): jobs waiting, RUNNING under a permit, and the
    time it is held until (a rate, a RateLimited hold), if it is."""

    key: str
    backlog: int
    running: int
    #: when it may start again (None: not held, or held until a permit comes back)
    held_until_ms: int | None = None
    held: bool = False


def check_flow_counters(
    report: AuditReport, queue_run: int, key_runs: dict[str, int], lanes_n: int,
    permits: dict[str, int], in_lanes: int,
) -> None:
    """Compare the flow-control counters a broker keeps with what its jobs say: permits held
    by RUNNING jobs per key ('' = no key) and jobs in key lanes."""
    held = sum(permits.values())
    if queue_run != held:
        report.counters.append(f"queue run {queue_run} != {held} permits")
    for key in sorted(set(key_runs) | set(permits)):
        if key and key_runs.get(key, 0) != permits.get(key, 0):
            report.counters.append(
                f"key {key!r} run {key_runs.get(key, 0)} != {permits.get(key, 0)} permits")
    if lanes_n != in_lanes:
        report.counters.append(f"lanes n {lanes_n} != {in_lanes} jobs in lanes")


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    jobs: list[str]
    started_at_ms: int
    last_seen_ms: int = 0
    #: where this worker serves its Prometheus metrics (`--metrics-port`), None: off
    metrics_url: str | None = None


#: how far back the series go (each broker keeps them this long at least)
SERIES_KEEP_MINUTES = 7 * 1440
#: per-minute points are kept for this many minutes back (the current minute last); hours
#: that ended before are rolled up into one point per hour by the retention step
SERIES_MINUTE_SPAN = 1440
#: hours rolled up per queue by one retention step, at most (bounded work per tick)
SERIES_ROLLUP_HOURS = 24
#: the steps a series can be read at: per minute (windows within SERIES_MINUTE_SPAN), per hour
SERIES_STEPS = (60, 3600)


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One step (a minute or an hour) of a queue's outcomes, counted by the transitions
    themselves: `failed` is attempts that failed and left the job to be retried (a failure
    with attempts left, or a lease that expired and was requeued), `dead` jobs that ended
    DEAD in the step."""

    minute: int  # epoch minute the step starts at: broker ms // 60,000
    succeeded: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DeadSelector:
    """Which dead jobs of one queue a DLQ call applies to; every field set must match.

    Death times are the broker's ms: `died_after_ms` is inclusive, `died_before_ms`
    exclusive. The last two fields serve the DLQ policy: poison jobs (`lease_expired`) are
    skipped unless it opts in, and a job redriven `max_redrives` times is left dead.
    """

    type: str | None = None
    error_code: str | None = None
    died_after_ms: int | None = None
    died_before_ms: int | None = None
    skip_error_codes: tuple[str, ...] = ()
    #: only jobs redriven fewer times than this (every DEAD -> QUEUED move counts)
    max_redrives: int | None = None


@dataclass(frozen=True, slots=True)
class DeadScan:
    """One bounded step through the dead index, oldest death first."""

    ids: list[str]
    #: the last entry examined ("<death ms>:<uid>"), None if none was; pass it back to go on
    cursor: str | None
    #: True when no entry of the selected death-time range is left past `cursor`
    done: bool


def parse_dead_cursor(cursor: str) -> tuple[int, str]:
    """A `DeadScan.cursor` back into (death ms, uid); anything else is a ValidationError."""
    ms, _, uid = cursor.partition(":")
    if not (ms.isdigit() and len(ms) <= 15 and UID_RE.fullmatch(uid)):
        raise ValidationError("invalid cursor", details={"cursor": cursor})
    return int(ms), uid


@dataclass(frozen=True, slots=True)
class DeathEvent:
    """A death recorded in the same atomic step that moved the job to DEAD, kept until its
    `on_dead` hooks ran (`ack_deaths`). `redrives` is the job's redrive count when it died,
    so each death of one job is its own event."""

    job_id: str
    type: str
    redrives: int


#: most events one `read_events` call returns
MAX_EVENT_READ = 1000
#: the cursor before every event of a log (both brokers)
LOG_START = "0"


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events of one queue's log after a cursor, oldest first (issue 17).

    `cursor` is where to go on from (the last event returned, or the cursor passed when
    none was). `gap` is True when events after the cursor left the bounded log before this
    read (trimmed), or the log does not know the cursor (it is ahead of the log: a Redis
    that lost its last writes); the events returned then start at the oldest one kept, and
    a follower must re-read the state it derives from the log."""

    queue: str
    events: list[JobEvent]
    cursor: str
    gap: bool = False


def check_event_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_EVENT_READ:
        raise ValidationError(f"limit must be between 1 and {MAX_EVENT_READ}",
                              details={"limit": limit})
    return limit


#: a follower's name (`load_cursor` / `save_cursor`)
CURSOR_NAME_RE = r"^[a-z][a-z0-9_.-]{0,31}$"


def check_cursor_name(name: str) -> str:
    if not re.fullmatch(CURSOR_NAME_RE, name):
        raise ValidationError("invalid follower name", details={"name": name[:40]})
    return name


def bad_cursor(cursor: str) -> ValidationError:
    return ValidationError("invalid event cursor", details={"cursor": cursor[:100]})
def check_series_window(minutes: int, type: str | None, step_s: int | None = None) -> int:
    """The argument checks of `Broker.series`, the same on every backend; answers the step
    (seconds): `step_s` if given, else 60 for windows within SERIES_MINUTE_SPAN, 3600 beyond.
    Per-minute points go back SERIES_MINUTE_SPAN only (older minutes are rolled up)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not (
        1 <= minutes <= SERIES_KEEP_MINUTES
    ):
        raise ValidationError(f"minutes must be an integer from 1 to {SERIES_KEEP_MINUTES}",
                              details={"minutes": str(minutes)})
    if type is not None and not TYPE_NAME_RE.fullmatch(str(type)):
        raise ValidationError("type is not a job type name", details={"type": str(type)[:128]})
    if step_s is None:
        return 60 if minutes <= SERIES_MINUTE_SPAN else 3600
    if isinstance(step_s, bool) or step_s not in SERIES_STEPS:
        raise ValidationError("step_s must be 60 or 3600", details={"step_s": str(step_s)})
    if step_s == 60 and minutes > SERIES_MINUTE_SPAN:
        raise ValidationError(f"per-minute points go back {SERIES_MINUTE_SPAN} minutes only",
                              details={"minutes": str(minutes), "step_s": "60"})
    return step_s


def series_hours(last_minute: int, minutes: int) -> range:
    """The epoch hours an hourly read of the last `minutes` covers: every hour holding one of
    the window's minutes, the current (partial) hour last."""
    return range((last_minute - minutes + 1) // 60, last_minute // 60 + 1)


def last_rollable_hour(now_minute: int) -> int:
    """The newest epoch hour the retention step may roll up: the hour that ended before the
    first of the last SERIES_MINUTE_SPAN minutes (so a per-minute read never meets one)."""
    return (now_minute - SERIES_MINUTE_SPAN + 1) // 60 - 1


def queue_not_found(queue: str) -> QueueNotFound:
    return QueueNotFound(f"queue {queue} not found", details={"queue": queue})


def queue_not_empty(queue: str, counts: dict[str, int]) -> InvalidState:
    """`forget_queue` refused: `counts` are the jobs left per state."""
    return InvalidState(
        f"queue {queue} still holds {sum(counts.values())} job(s): only an empty queue can be"
        " deleted", details={"queue": queue, "counts": counts},
    )


class SyncEnqueuer(Protocol):
    """A blocking enqueue over a connection of its own (`Broker.sync_enqueuer`): what the sync
    client calls instead of hopping to its event-loop thread and back, which costs more than
    the write itself. Same semantics as `Broker.enqueue`; used only after `connect`."""

    def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]: ...

    def close(self) -> None:
        """Release what it holds (its connection); the broker stays open."""


@runtime_checkable
class LeasingWait(Protocol):
    """An optional capability of a broker: wait for work on one queue and lease it in the
    same round trip (the wake-up and the fetch in one step, not wake-then-lease). The worker
    uses it when it serves a single queue; otherwise `wait_for_work`, then `fetch`."""

    async def wait_and_fetch(self, queue: str, count: int, worker_id: str, lease_ms: int,
                             timeout_s: float, ticket: str) -> FetchBatch:
        """Block until work may be in `queue` or the timeout passes, then (in any case)
        lease up to `count` jobs as `fetch` does; the leases returned are the caller's.
        `ticket` (a fresh `new_ticket()` per call) names the call for `revoke_wait`."""

    async def revoke_wait(self, queue: str, ticket: str) -> bool:
        """Make the `wait_and_fetch` call of `ticket` lease nothing from now on, even if its
        fetch is already on its way to the broker. True: it had not leased (nothing will
        come of it). False: it may have leased already, its reply is on its way (the caller
        must take it: start or release what it leased)."""


#: what a wait ticket may be made of (it is part of a key name)
_TICKET = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_ticket() -> str:
    """A fresh ticket for `LeasingWait.wait_and_fetch`."""
    return secrets.token_hex(8)


def check_ticket(ticket: str) -> None:
    if not _TICKET.match(ticket):
        raise ValueError(f"not a wait ticket: {ticket!r}")


@runtime_checkable
class Broker(Protocol):
    # --- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open connections and check the server is safe to use (e.g. no eviction)."""

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def check_ready(self) -> None:
        """Raise `BrokerUnavailable` / `BrokerMisconfigured` unless the broker answers and is
        safe to take new work now (readiness probes); looks at the server again if needed."""

    async def now_ms(self) -> int:
        """The broker's clock: the one clock for leases and due times."""

    # --- producer -------------------------------------------------------------------------
    async def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """Store jobs; one atomic step per queue. Idempotency keys return the existing job."""

    def sync_enqueuer(self) -> SyncEnqueuer | None:
        """An optional capability: a blocking enqueue path for synchronous producers (the
        sync client), or None when this broker has none (then the client uses `enqueue`)."""

    # --- worker ---------------------------------------------------------------------------
    async def fetch(self, queue: str, count: int, worker_id: str, lease_ms: int) -> FetchBatch:
        """Promote due jobs, then lease up to `count` jobs: QUEUED -> RUNNING, attempts + 1."""

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until work may be available in one of `queues` or the timeout passes."""

    async def heartbeat(self, leases: Sequence[LeaseRef], lease_ms: int) -> HeartbeatReply:
        """Extend leases; return the ids whose lease was lost, and the cancel requests of the
        held ones."""

    async def append_logs(self, items: Sequence[LogAppend]) -> list[bool]:
        """Keep each item's lines with its job (the last `joblogs.MAX_LINES` lines within
        `joblogs.MAX_BYTES`, oldest dropped first), only while the job is RUNNING under that
        token (False: refused, nothing kept). Deleted with the job."""
        ...

    async def job_logs(self, job_id: str) -> list[str]:
        """The kept log lines of a job, oldest first ([] for none or an unknown job)."""
        ...

    async def ack(self, items: Sequence[AckItem]) -> list[bool]:
        """RUNNING -> SUCCEEDED for each item whose token is current."""

    async def fail(self, items: Sequence[FailItem]) -> list[JobState | None]:
        """RUNNING -> SCHEDULED/QUEUED (retry) or DEAD; None where the lease was lost.
        CANCELLED for a delivery asked to stop (`cancel`) whose worker had not heard yet."""

    async def release(self, leases: Sequence[LeaseRef]) -> list[bool]:
        """RUNNING -> QUEUED without charging the attempt (graceful shutdown)."""

    async def cancel_running(self, leases: Sequence[LeaseRef]) -> list[bool]:
        """RUNNING -> CANCELLED for each lease held with the current token whose delivery was
        asked to stop (`cancel`); the history line names who asked. False otherwise."""
    async def progress(self, items: Sequence[ProgressItem]) -> list[bool]:
        """Store each running job's progress report (`progress` on the job) with its event,
        for the current lease holder only; False where the lease was lost."""
    async def release_held(self, leases: Sequence[LeaseRef], hold_ms: int) -> list[bool]:
        """RUNNING -> QUEUED without charging the attempt (the handler raised RateLimited),
        holding each job's limit key (its queue, for a job without one) for `hold_ms`."""

    async def promote_due(self, queue: str, limit: int = 1000) -> int: ...

    async def reap_expired(self, queue: str, limit: int = 1000) -> ReapResult: ...

    async def expire_finished(self, queue: str, limit: int = 1000) -> int:
        """Retention: delete finished jobs past their retention (DEAD ones past the DLQ
        retention); return how many. Not `dlq_purge`, the operator's delete of dead jobs."""

    # --- operator -------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job: ...

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Jobs by id, in order, None for an unknown one: a bounded number of round trips
        whatever the count (never one concurrent call per id)."""

    async def cancel(self, job_id: str, actor: str = "manual") -> Job:
        """SCHEDULED / QUEUED -> CANCELLED. On a RUNNING job, record a cancel request for its
        current delivery (`Job.cancel_requested`); the job stays RUNNING until its worker
        stops it (`cancel_running`) or its lease expires (reap: CANCELLED)."""

    async def retry(self, job_id: str, actor: str = "manual") -> Job: ...

    async def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        """Jobs newest first (by creation; ids sort by creation time), filtered by queue,
        state and type. `cursor` is the opaque `next_cursor` of the previous page; a page may
        hold fewer than `limit` items while `next_cursor` is set (bounded scan per call)."""

    async def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page: ...

    async def dlq_scan(
        self, queue: str, selector: DeadSelector | None = None, *, limit: int = 100,
        cursor: str | None = None, scan: int = 1000,
    ) -> DeadScan:
        """Dead jobs matching `selector`, oldest death first, after `cursor`: at most `limit`
        ids, examining at most `scan` index entries (so a call stays bounded however many
        dead jobs do not match). Changes nothing."""

    async def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        actor: str = "dlq.redrive", *, selector: DeadSelector | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """DEAD -> QUEUED in place (attempts 0, redrive counter + 1, a history line naming
        `actor`), for the given ids or the oldest `limit` dead jobs, each only if it is dead
        and matches `selector`. Returns the ids moved (with `dry_run`: that would move)."""

    async def dlq_move(
        self, queue: str, job_ids: Sequence[str], target_queue: str, actor: str,
        *, selector: DeadSelector | None = None,
    ) -> list[tuple[str, str]]:
        """Redrive dead jobs of `queue` into another queue: each becomes a new QUEUED job
        there (same type, payload, priority, max_attempts, timeout; its history plus a line
        naming the old id) and the dead one is removed. Safe to repeat after a crash: the
        copy carries an idempotency key made of the old id and its redrive count. Returns
        (old id, new id) pairs."""

    async def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        *, selector: DeadSelector | None = None, dry_run: bool = False,
    ) -> list[str]:
        """Delete dead jobs (given ids or the oldest `limit`) that match `selector`."""

    async def claim_deaths(self, queue: str, limit: int, lease_ms: int) -> list[DeathEvent]:
        """Claim up to `limit` unhandled deaths for `lease_ms`: claimed events are not handed
        out again until the lease passes (so a crashed claimer's events come back)."""

    async def ack_deaths(self, queue: str, events: Sequence[DeathEvent]) -> int:
        """Forget deaths whose hooks ran; returns how many were removed."""

    async def pause(self, queue: str) -> None: ...

    async def resume(self, queue: str) -> None: ...

    async def is_paused(self, queue: str) -> bool: ...

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of `queues` are paused, in a bounded number of round trips."""

    async def forget_queue(self, queue: str) -> None:
        """Drop an empty queue from `queues()` (and its paused flag), atomically: a job
        enqueued meanwhile is never left in an unlisted queue. `QueueNotFound` if the queue
        is unknown, `InvalidState` (with its counts) while it holds any job."""

    async def queues(self) -> list[str]: ...

    # --- flow control ---------------------------------------------------------------------
    async def set_limits(self, queue: str, limits: QueueLimits) -> QueueLimits:
        """Set a queue's limits (all-None limits delete them); counters are kept."""

    async def get_limits(self, queue: str) -> QueueLimits | None: ...

    async def delete_limits(self, queue: str) -> bool:
        """Remove a queue's limits; False if it had none."""

    async def limited_counts(self, queues: Sequence[str]) -> dict[str, int]:
        """QUEUED jobs of each queue waiting behind its limits (in key lanes), pipelined."""

    async def held_counts(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per queue, how many times each limit held work back at a fetch (counters by
        reason: concurrency, rate, hold, key_concurrency, key_rate, key_hold)."""

    async def limit_keys(self, queue: str, limit: int = 50) -> list[KeyInfo]:
        """The busiest keys with backlog (most jobs waiting first), bounded scan."""

    async def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]: ...

    async def ready_ages(self, queues: Sequence[str]) -> dict[str, int]:
        """Per queue, ms (broker clock) since the job waiting longest for a worker became due:
        QUEUED, or SCHEDULED past its time; 0 when none waits. Bounded reads per queue, in a
        bounded number of round trips (the autoscaling signal)."""

    async def series(
        self, queue: str, minutes: int, type: str | None = None, step_s: int | None = None
    ) -> list[SeriesPoint]:
        """The last `minutes` minutes of the queue's outcomes (1 to SERIES_KEEP_MINUTES, the
        current minute last, by the broker's clock), zeros included; of one job type, or of
        all. One point per step (`check_series_window`): per minute, or per hour over
        `series_hours` (every point a whole hour, the current one partial; never mixed). A
        bounded number of round trips."""

    async def audit(self, queue: str) -> AuditReport: ...

    # --- event log (issue 17) --------------------------------------------------------------
    async def read_events(
        self, queue: str, after: str = LOG_START, limit: int = 100,
    ) -> EventPage:
        """Events of `queue` after the cursor `after`, oldest first, at most `limit`
        (1-1000). Changes nothing. A malformed cursor is a ValidationError."""

    async def wait_events(self, queue: str, after: str, timeout_s: float) -> bool:
        """Block until `queue`'s log holds an event after `after`, or the timeout (at most
        5 s a call) passes; True when one may be there."""

    async def events_tail(self, queue: str) -> str:
        """The cursor after the newest event of `queue` (`LOG_START` for an empty log)."""

    async def get_with_cursor(self, job_id: str) -> tuple[Job, str]:
        """The job and its queue's `events_tail`, read in one atomic step: every event of
        the job after this snapshot is in the log after that cursor (race-free waits)."""

    async def load_cursor(self, queue: str, name: str) -> str | None:
        """A follower's saved position in `queue`'s log (None: never saved)."""

    async def save_cursor(self, queue: str, name: str, cursor: str) -> None:
        """Save a follower's position (the webhook fan-out resumes from it after a restart)."""

    # --- worker registry ------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl_s: float) -> None: ...

    async def deregister_worker(self, worker_id: str) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...
