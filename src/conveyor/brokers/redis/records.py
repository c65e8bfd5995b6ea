"""Turns Redis hashes back into validated `Job` objects.

Everything read back from Redis is checked: a record that does not parse raises `CorruptJob`
naming the job, rather than handing half a job to the API or a worker.
"""

from __future__ import annotations

import pydantic
from pydantic_core import from_json

from conveyor.brokers.history import parse_history
from conveyor.errors import CorruptJob
from conveyor.jobs import ErrorInfo, Job, JobState
from conveyor.timeutil import ms_to_datetime


def _opt_ms(value: str | None) -> int | None:
    if value is None or value == "" or value == "-1":
        return None
    return int(value)


def job_from_hash(queue: str, uid: str, h: dict[str, str]) -> Job:
    job_id = f"{queue}:{uid}"
    try:
        timeout_ms = _opt_ms(h.get("timeout"))
        err_code = h.get("err_code") or None
        return Job(
            id=job_id,
            type=h["type"],
            queue=queue,
            payload=from_json(h["payload"]),
            state=JobState(h["state"]),
            priority=int(h.get("prio", "0")),
            attempts=int(h.get("attempts", "0")),
            max_attempts=int(h["max_att"]),
            created_at=ms_to_datetime(int(h["created"])),  # type: ignore[arg-type]
            run_at=ms_to_datetime(_opt_ms(h.get("run_at"))),
            started_at=ms_to_datetime(_opt_ms(h.get("started"))),
            finished_at=ms_to_datetime(_opt_ms(h.get("finished"))),
            result=from_json(h["result"]) if h.get("result") else None,
            last_error=ErrorInfo(code=err_code, message=h.get("err_msg", ""))
            if err_code
            else None,
            history=parse_history(h.get("history", "")),
            idempotency_key=h.get("idem") or None,
            timeout_s=timeout_ms / 1000 if timeout_ms is not None else None,
        )
    except (KeyError, ValueError, pydantic.ValidationError) as exc:
        raise CorruptJob(
            f"job {job_id} has a corrupt record: {exc}", details={"job_id": job_id}
        ) from exc
