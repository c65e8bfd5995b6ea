"""The broker shell: what every backend does around its storage, written once.

Argument checks (queue names, page and scan limits, cursors, ids within a queue, a move's
target), the mapping of a transition's outcome to the error the protocol promises, and the
small value builders (`Delivery`, the worker record) are here, and both brokers call them
from their public methods, so the same input gets the same answer (the same exception, the
same ErrorCode) from either. A new backend calls these and writes only its storage code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from conveyor.brokers.base import WorkerInfo
from conveyor.errors import CorruptJob, InvalidState, JobNotFound, ValidationError
from conveyor.ids import UID_RE, split_job_id
from conveyor.jobs import Delivery
from conveyor.queues import validate_queue_name

log = logging.getLogger("conveyor.broker")

#: a page of `list_jobs` / `dlq_list` holds 1 to MAX_PAGE jobs
MAX_PAGE = 1000
#: `dlq_scan` returns and looks at 1 to MAX_DEAD_SCAN dead jobs per call
MAX_DEAD_SCAN = 10_000
CANCEL_RULE = "only scheduled, queued or running jobs can be cancelled"
RETRY_RULE = "only dead or cancelled jobs can be retried"

queue_name = validate_queue_name


def queue_names(queues: Sequence[str]) -> list[str]:
    """Every name checked (a worker's queues, a wait's queues)."""
    return [validate_queue_name(q) for q in queues]


def check_page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}",
                              details={"limit": limit})
    return limit


def uid_cursor(cursor: str | None) -> str | None:
    """A `list_jobs` cursor: the uid of the last job of the page before."""
    if cursor is not None and not UID_RE.fullmatch(cursor):
        raise ValidationError("invalid cursor", details={"cursor": cursor})
    return cursor


def offset_cursor(cursor: str | None) -> int:
    """A `dlq_list` cursor: an offset into the queue's DLQ, newest first."""
    if cursor is not None and not cursor.isdigit():
        raise ValidationError("invalid cursor", details={"cursor": cursor})
    return int(cursor or 0)


def check_dead_scan(queue: str, limit: int, scan: int) -> None:
    validate_queue_name(queue)
    if not (1 <= limit <= MAX_DEAD_SCAN and 1 <= scan <= MAX_DEAD_SCAN):
        raise ValidationError(
            f"limit and scan must be between 1 and {MAX_DEAD_SCAN}",
            details={"limit": limit, "scan": scan},
        )


def uid_in(queue: str, job_id: str) -> str:
    """The uid of a job id that must name a job of `queue`."""
    q, uid = split_job_id(job_id)
    if q != queue:
        raise ValidationError(f"job {job_id} is not in queue {queue}", details={"job_id": job_id})
    return uid


def uids_in(queue: str, job_ids: Sequence[str] | None) -> list[str] | None:
    """`uid_in` of each id; None (no ids: a selection by filter) stays None."""
    return None if job_ids is None else [uid_in(queue, j) for j in job_ids]


def check_move(queue: str, target: str) -> None:
    """A redrive into another queue: both names valid, the target not the job's own queue."""
    validate_queue_name(queue)
    validate_queue_name(target)
    if target == queue:
        raise ValidationError(
            "the target queue is the job's own queue: redrive in place instead",
            details={"target_queue": target},
        )


def retention_ms(queue: str, retention_s: float, per_queue: dict[str, float]) -> int:
    return int(per_queue.get(queue, retention_s) * 1000)


def raise_for(job_id: str, res: str, ok: str, why: str) -> None:
    """An operator transition's outcome (`ok`, `not_found`, `corrupt:<why>` or the state the
    job is in) as the protocol's answer: nothing, JobNotFound, CorruptJob or InvalidState."""
    if res == ok:
        return
    if res == "not_found":
        raise JobNotFound(f"job {job_id} not found", details={"job_id": job_id})
    if res.startswith("corrupt:"):
        raise CorruptJob(f"job {job_id} has a corrupt record: {res[8:]}",
                         details={"job_id": job_id})
    raise InvalidState(f"job {job_id} is {res}: {why}", details={"job_id": job_id, "state": res})


def cancel_outcome(job_id: str, res: str) -> None:
    """`requested` (a RUNNING job: its worker is asked to stop it) is a success too."""
    raise_for(job_id, "ok" if res == "requested" else res, "ok", CANCEL_RULE)


def retry_outcome(job_id: str, res: str) -> None:
    raise_for(job_id, res, "retried", RETRY_RULE)


def not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"job {job_id} not found", details={"job_id": job_id})


def delivery(
    queue: str, uid: str, *, token: str, type: str, payload: str, attempts: int,
    max_attempts: int, timeout_ms: int | str | None, due_ms: int | None, leased_ms: int,
    trace: str,
) -> Delivery:
    """One leased job as a worker receives it."""
    return Delivery(
        job_id=f"{queue}:{uid}", queue=queue, type=type, payload_json=payload, token=token,
        attempts=attempts, max_attempts=max_attempts,
        timeout_s=None if timeout_ms is None else int(timeout_ms) / 1000,
        due_ms=due_ms, leased_ms=leased_ms, trace=trace,
    )


def worker_record(info: WorkerInfo, now_ms: int) -> str:
    """The stored record of a live worker (JSON), seen at `now_ms`."""
    return json.dumps({**asdict(info), "last_seen_ms": now_ms})


def parse_worker(text: Any) -> WorkerInfo | None:
    """A stored worker record back; None (logged) when it does not parse."""
    try:
        return WorkerInfo(**json.loads(text))
    except (TypeError, ValueError):
        log.warning("corrupt_worker_record", extra={"record": str(text)[:200]})
        return None
