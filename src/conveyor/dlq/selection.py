"""Which dead jobs a redrive or purge acts on, as operators give it (the client, the CLI and
the API share it): explicit ids, or queue / type / error code / death-time range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.brokers.base import DeadSelector
from conveyor.errors import ValidationError
from conveyor.ids import split_job_id
from conveyor.queues import validate_queue_name
from conveyor.timeutil import datetime_to_ms

#: job types and error codes: the characters a type name may hold
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
ACTOR_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,127}$")
MAX_IDS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(when: datetime) -> int:
    """Exact broker ms, rounded up: deaths are whole ms, so `died >= t` and `died < t` both
    mean `died >= ceil(t)` / `died < ceil(t)` (float timestamps would be off by one)."""
    datetime_to_ms(when)  # refuses a naive datetime
    return -((_EPOCH - when) // _MS)


def _bad(field: str, message: str, value: Any = None) -> ValidationError:
    return ValidationError(message, details=[{"loc": [field], "msg": message, "value": value}])


def validate_actor(actor: str) -> str:
    """Who or what acts (`api`, `cli:<user>`, `policy`): written into each job's history."""
    if not isinstance(actor, str) or not ACTOR_RE.fullmatch(actor):
        raise _bad("actor", "actor must be 1-128 printable ASCII characters", actor)
    return actor


@dataclass(frozen=True, slots=True)
class DeadSelection:
    """Explicit `ids` (optionally all of `queue`), or the filters, all ANDed. Death times
    are half-open: `died_after` <= died < `died_before`."""

    ids: tuple[str, ...] = ()
    queue: str | None = None
    type: str | None = None
    error_code: str | None = None
    died_before: datetime | None = None
    died_after: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.ids, str) or not all(isinstance(i, str) for i in self.ids):
            raise _bad("ids", "ids must be a list of job ids", None)
        if len(self.ids) > MAX_IDS:
            raise _bad("ids", f"at most {MAX_IDS} ids per call", len(self.ids))
        for job_id in self.ids:
            split_job_id(job_id)
        if self.queue is not None:
            validate_queue_name(self.queue)
        for field, value in (("type", self.type), ("error_code", self.error_code)):
            if value is not None and (not isinstance(value, str) or not NAME_RE.fullmatch(value)):
                raise _bad(field, f"{field} must be 1-128 characters of A-Z a-z 0-9 _ . : -",
                           value)
        for field, when in (("died_before", self.died_before), ("died_after", self.died_after)):
            if when is not None and not isinstance(when, datetime):
                raise _bad(field, f"{field} must be a datetime", str(when))
        if self.ids and self.filtered:
            raise _bad("ids", "give job ids or filters (type, error_code, died_*), not both")
        if not self.ids and not self.filtered and self.queue is None:
            raise _bad("ids", "give job ids, a queue or a filter: refusing to act on every"
                       " dead job of every queue")
        if self.queue is not None:
            for job_id in self.ids:
                if split_job_id(job_id)[0] != self.queue:
                    raise _bad("ids", f"job {job_id} is not in queue {self.queue}", job_id)
        after, before = self.died_after_ms, self.died_before_ms
        if after is not None and before is not None and after >= before:
            raise _bad("died_after", "died_after must be earlier than died_before")

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (
            self.type, self.error_code, self.died_before, self.died_after
        ))

    @property
    def died_after_ms(self) -> int | None:
        return None if self.died_after is None else _ms(self.died_after)

    @property
    def died_before_ms(self) -> int | None:
        return None if self.died_before is None else _ms(self.died_before)

    def selector(self, cap_ms: int | None = None) -> DeadSelector:
        """The broker's selector; `cap_ms` bounds the death range from above, so jobs that die
        (again) while a long redrive runs are not chased."""
        before = self.died_before_ms
        if cap_ms is not None:
            before = cap_ms if before is None else min(before, cap_ms)
        return DeadSelector(
            type=self.type, error_code=self.error_code, died_after_ms=self.died_after_ms,
            died_before_ms=before,
        )
