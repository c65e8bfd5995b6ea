"""Job ids: `<queue>:<uid>`, where uid is 32 hex digits: 48 bits of epoch milliseconds, then
an 80-bit field that starts as 79 random bits (its top bit clear) and is incremented for ids
made in the same millisecond.

The id carries its queue, so a job is found by id alone in O(1) (one key, one hash slot), and
the uid sorts by creation time as text, which gives "newest first" listings for free. Hex is
used rather than ULID's base32 because it is several times cheaper to make on the hot path.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time

from conveyor.errors import ValidationError
from conveyor.queues import QUEUE_NAME_RE

UID_RE = re.compile(r"^[0-9a-f]{32}$")
JOB_ID_MAX_LEN = 64 + 1 + 32

# random reseeds itself in forked children (os.register_at_fork), so workers forked from one
# parent do not repeat each other's ids; ids need to be unique, not unguessable.
_bits = random.getrandbits
_RAND_MAX = (1 << 80) - 1
_lock = threading.Lock()
_last = (0, 0)


def new_uid(now_ms: int | None = None) -> str:
    """Monotonic within a process: in the same millisecond (or if the clock steps back) the
    random part is incremented, so ids made one after another sort in creation order."""
    global _last
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms and last_rand < _RAND_MAX:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = _bits(80) >> 1  # room to increment within the millisecond
        _last = (ms, rand)
    return f"{ms:012x}{rand:020x}"


def new_job_id(queue: str) -> str:
    return f"{queue}:{new_uid()}"


def split_job_id(job_id: str) -> tuple[str, str]:
    """Return (queue, uid) or raise ValidationError for anything that is not a job id."""
    if isinstance(job_id, str) and len(job_id) <= JOB_ID_MAX_LEN:
        queue, sep, uid = job_id.rpartition(":")
        if sep and QUEUE_NAME_RE.fullmatch(queue) and UID_RE.fullmatch(uid):
            return queue, uid
    raise ValidationError(
        f"{job_id!r} is not a job id (expected <queue>:<32 hex digits>)",
        details={"field": "job_id", "value": job_id if isinstance(job_id, str) else None},
    )


def is_job_id(job_id: str) -> bool:
    try:
        split_job_id(job_id)
    except ValidationError:
        return False
    return True


def lease_nonce() -> str:
    """128 random bits (from the OS) for one fetch call; the call's i-th lease token is
    `<nonce>.<i>`. A per-job counter would repeat after a lost write (a Redis restarted from
    a stale AOF, a failover to a lagging replica) and hand a second worker the first one's
    token; random bits never come back. Made here, not in Lua: Redis scripts have no good
    randomness."""
    return secrets.token_hex(16)

