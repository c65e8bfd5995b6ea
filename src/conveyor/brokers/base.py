"""The Broker protocol: one method per transition of the job state machine (see DESIGN.md).

Every backend implements all of it with the same semantics, and `tests/brokers` (the
conformance suite) runs against each. Batch methods take lists so a worker can send many
acks or heartbeats in one round trip; each item succeeds or is rejected on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from conveyor.jobs import Delivery, EnqueueResult, Job, JobSpec, JobState


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
class ReapResult:
    requeued: int = 0
    dead: int = 0


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

    @property
    def ok(self) -> bool:
        return not (
            self.orphans or self.duplicates or self.mismatched or self.dangling or self.unlisted
        )


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


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Job]
    next_cursor: str | None


@runtime_checkable
class Broker(Protocol):
    # --- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open connections and check the server is safe to use (e.g. no eviction)."""

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def now_ms(self) -> int:
        """The broker's clock: the one clock for leases and due times."""

    # --- producer -------------------------------------------------------------------------
    async def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """Store jobs; one atomic step per queue. Idempotency keys return the existing job."""

    # --- worker ---------------------------------------------------------------------------
    async def fetch(self, queue: str, count: int, worker_id: str, lease_ms: int) -> FetchBatch:
        """Promote due jobs, then lease up to `count` jobs: QUEUED -> RUNNING, attempts + 1."""

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until work may be available in one of `queues` or the timeout passes."""

    async def heartbeat(self, leases: Sequence[LeaseRef], lease_ms: int) -> list[str]:
        """Extend leases; return the ids whose lease was lost."""

    async def ack(self, items: Sequence[AckItem]) -> list[bool]:
        """RUNNING -> SUCCEEDED for each item whose token is current."""

    async def fail(self, items: Sequence[FailItem]) -> list[JobState | None]:
        """RUNNING -> SCHEDULED/QUEUED (retry) or DEAD; None where the lease was lost."""

    async def release(self, leases: Sequence[LeaseRef]) -> list[bool]:
        """RUNNING -> QUEUED without charging the attempt (graceful shutdown)."""

    async def promote_due(self, queue: str, limit: int = 1000) -> int: ...

    async def reap_expired(self, queue: str, limit: int = 1000) -> ReapResult: ...

    async def purge_expired(self, queue: str, limit: int = 1000) -> int:
        """Delete finished jobs past their retention; return how many."""

    # --- operator -------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job: ...

    async def cancel(self, job_id: str) -> Job: ...

    async def retry(self, job_id: str, actor: str = "manual") -> Job: ...

    async def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        """Jobs newest first (by creation; ids sort by creation time), filtered by queue,
        state and type. `cursor` is the opaque `next_cursor` of the previous page; a page may
        hold fewer than `limit` items while `next_cursor` is set (bounded scan per call)."""

    async def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page: ...

    async def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        actor: str = "dlq.redrive",
    ) -> list[str]: ...

    async def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[str]: ...

    async def pause(self, queue: str) -> None: ...

    async def resume(self, queue: str) -> None: ...

    async def is_paused(self, queue: str) -> bool: ...

    async def queues(self) -> list[str]: ...

    async def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]: ...

    async def audit(self, queue: str) -> AuditReport: ...

    # --- worker registry ------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl_s: float) -> None: ...

    async def deregister_worker(self, worker_id: str) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...
