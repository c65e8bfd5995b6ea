"""Job ids: `<queue>:<ulid>`.

The id carries its queue, so a job is found by id alone in O(1) (one key, one hash slot), and
the ULID part sorts by creation time, which gives "newest first" listings for free.
"""

from __future__ import annotations

import os
import re
import time

from conveyor.errors import ValidationError
from conveyor.queues import QUEUE_NAME_RE

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
JOB_ID_MAX_LEN = 64 + 1 + 26


def new_ulid(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_job_id(queue: str) -> str:
    return f"{queue}:{new_ulid()}"


def split_job_id(job_id: str) -> tuple[str, str]:
    """Return (queue, ulid) or raise ValidationError for anything that is not a job id."""
    if isinstance(job_id, str) and len(job_id) <= JOB_ID_MAX_LEN:
        queue, sep, ulid = job_id.rpartition(":")
        if sep and QUEUE_NAME_RE.fullmatch(queue) and ULID_RE.fullmatch(ulid):
            return queue, ulid
    raise ValidationError(
        f"{job_id!r} is not a job id (expected <queue>:<26-character ULID>)",
        details={"field": "job_id", "value": job_id if isinstance(job_id, str) else None},
    )


def is_job_id(job_id: str) -> bool:
    try:
        split_job_id(job_id)
    except ValidationError:
        return False
    return True
