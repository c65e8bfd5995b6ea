"""Which dead jobs a redrive, a purge or a listing acts on, as operators give it (the client,
the CLI, the API and the dashboard share it): explicit ids, or queue / type / error code /
death-time range.

The rules are stated here once: job ids or filters, not both; never every dead job of every
queue (a selection names ids, a queue or a filter); the name and time checks of each filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.brokers.base import DeadSelector
from conveyor.errors import ValidationError
from conveyor.ids import split_job_id
from conveyor.jobs import Job
from conveyor.queues import TYPE_NAME_RE, validate_queue_name
from conveyor.timeutil import datetime_to_ms

ACTOR_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,127}$")
MAX_IDS = 10_000
#: what a selection may give besides ids and a queue
FILTERS = ("type", "error_code", "died_before", "died_after")
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


def check_ids_or_filters(ids: bool, filters: Iterable[str]) -> None:
    """Job ids or filters, not both. `filters`: the names of the filters given."""
    if ids and (given := [f for f in FILTERS if f in set(filters)]):
        raise _bad("ids", f"give job ids or filters ({', '.join(given)}), not both")


def _check_filters(
    type: str | None, error_code: str | None, died_before: datetime | None,
    died_after: datetime | None,
) -> None:
    for field, value in (("type", type), ("error_code", error_code)):
        if value is not None and (not isinstance(value, str) or not TYPE_NAME_RE.fullmatch(value)):
            raise _bad(field, f"{field} must be 1-128 characters of A-Z a-z 0-9 _ . : -", value)
    for field, when in (("died_before", died_before), ("died_after", died_after)):
        if when is not None and not isinstance(when, datetime):
            raise _bad(field, f"{field} must be a datetime", str(when))
        if when is not None:
            _ms(when)  # refuses a naive datetime


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
        _check_filters(self.type, self.error_code, self.died_before, self.died_after)
        check_ids_or_filters(bool(self.ids), [f for f in FILTERS if getattr(self, f) is not None])
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
        return any(getattr(self, f) is not None for f in FILTERS)

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


def dead_filter(
    *, error_code: str | None = None, died_before: datetime | None = None,
    died_after: datetime | None = None,
) -> Callable[[Job], bool] | None:
    """What a listing of dead jobs keeps of the pages it reads (None: every job), by the rule
    the broker's `dlq_scan` applies: the code of the error the job died with, and its death
    time, half-open (`died_after` <= died < `died_before`, whole ms; an empty range keeps
    nothing).

    Listings read newest first across queues through `list_jobs`, which filters by type
    only, so these are applied to its pages: `dlq_scan` walks one queue oldest death
    first, with a cursor of its own."""
    _check_filters(None, error_code, died_before, died_after)
    if error_code is None and died_before is None and died_after is None:
        return None
    after = None if died_after is None else _ms(died_after)
    before = None if died_before is None else _ms(died_before)

    def keep(job: Job) -> bool:
        if error_code is not None and (job.last_error is None
                                       or job.last_error.code != error_code):
            return False
        if after is None and before is None:
            return True
        if job.finished_at is None:
            return False
        died = _ms(job.finished_at)
        return (after is None or died >= after) and (before is None or died < before)

    return keep
