"""Where schedules live and how a tick becomes a job: the `ScheduleStore` protocol (Redis and
SQLite implementations sit in the broker packages), the stored record, and the planning that
turns a due schedule into one atomic fire call.

A schedule lives in its target queue's slot (Redis: keys with the queue's `{queue}` tag), so
its fire step creates the job and advances the next tick in one script / transaction. The
fire call is conditional: it carries the definition's fingerprint and the next tick it was
planned from, and changes nothing unless both still hold. Any number of workers may plan the
same tick; the first call wins and the others find the next tick moved on (exactly one job).

Ticks are fired ahead of time (`LOOKAHEAD_MS`): the job is stored SCHEDULED with its run_at
at the tick, so the normal promote / wake path starts it on time, as it does a delayed job.
Schedules with `overlap="skip"` are fired at their tick instead (the previous job's state
can only be judged then).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.brokers.records import as_int
from conveyor.errors import CorruptRecord
from conveyor.ids import new_uid
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, MAX_EPOCH_MS, JobState
from conveyor.queues import PRIORITY_MAX, PRIORITY_MIN
from conveyor.schedules.plan import plan_fire
from conveyor.schedules.spec import Schedule, _canonical, _digest
from conveyor.schedules.ticks import Timing, iter_ticks, next_tick

if TYPE_CHECKING:
    from conveyor.brokers.base import Broker, Page

#: ticks are fired this long before they are due (more than two maintenance periods)
LOOKAHEAD_MS = 5_000
#: at most this many ticks of one schedule are fired ahead by one call
MAX_AHEAD_TICKS = 10
#: due schedules read per queue and maintenance tick
DUE_LIMIT = 200
#: a Redis schedule remembers its newest runs (SQLite reads them from the jobs table)
RUNS_KEEP = 1000
#: schedules in one listing page at most
LIST_MAX = 100


@dataclass(frozen=True, slots=True)
class ResolvedJob:
    """The job template with the handler's defaults applied (at save time, like enqueue)."""

    type: str
    payload_json: str
    priority: int
    max_attempts: int
    timeout_ms: int | None

    def to_json(self) -> str:
        return json.dumps([self.type, self.payload_json, self.priority, self.max_attempts,
                           self.timeout_ms], separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, name: str, text: Any) -> ResolvedJob:
        try:
            v = json.loads(text) if isinstance(text, str) else None
            jtype, payload, prio, max_att, timeout = v  # type: ignore[misc]
            ok = (isinstance(jtype, str) and jtype and isinstance(payload, str)
                  and _int_in(prio, PRIORITY_MIN, PRIORITY_MAX)
                  and _int_in(max_att, 1, MAX_ATTEMPTS_LIMIT)
                  and (timeout is None or _int_in(timeout, 1, 10**15)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise _corrupt(name, "its job template does not parse")
        return cls(jtype, payload, prio, max_att, timeout)


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _corrupt(name: str, what: str) -> CorruptRecord:
    return CorruptRecord(f"schedule {name[:64]!r} has a corrupt record: {what}",
                         details={"schedule": name[:64]})


@dataclass(frozen=True, slots=True)
class Definition:
    """What an upsert stores: the definition (paused left out: that is state), the resolved
    job, and the fingerprints that decide "identical" and "same timing"."""

    schedule: Schedule
    job: ResolvedJob
    def_json: str
    fp: str
    tfp: str

    @classmethod
    def of(cls, schedule: Schedule, job: ResolvedJob) -> Definition:
        stored = schedule.model_copy(update={"paused": False})
        def_json = stored.canonical_json()
        return cls(stored, job, def_json, _digest(_canonical([def_json, job.to_json()])),
                   schedule.timing_fingerprint())

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def queue(self) -> str:
        return self.schedule.job.queue


def due_score(overlap: str, next_ms: int | None) -> int | None:
    """When a worker should fire the tick `next_ms` (None: never)."""
    if next_ms is None:
        return None
    return next_ms if overlap == "skip" else next_ms - LOOKAHEAD_MS


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """A schedule as stored: its definition (with `paused` from the stored state) and state."""

    schedule: Schedule
    queue: str
    paused: bool
    next_ms: int | None
    created_ms: int
    updated_ms: int
    fired: int
    skipped: int
    missed: int
    last_tick_ms: int | None
    last_job_id: str | None


def parse_definition(name: str, def_json: Any) -> Schedule:
    """A stored definition read back (a record that does not parse: CorruptRecord)."""
    try:
        return _parse_cached(def_json if isinstance(def_json, str) else "")
    except Exception:
        raise _corrupt(name, "its definition does not parse") from None


_CACHE: OrderedDict[str, tuple[Schedule, Timing]] = OrderedDict()
_CACHE_MAX = 20_000


def _cached(def_json: str) -> tuple[Schedule, Timing]:
    hit = _CACHE.get(def_json)
    if hit is None:
        s = Schedule.parse(def_json)
        hit = (s, s.timing())
        _CACHE[def_json] = hit
        if len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return hit


def _parse_cached(def_json: str) -> Schedule:
    return _cached(def_json)[0]


def timing_of(def_json: str) -> Timing:
    return _cached(def_json)[1]


def _num(v: Any, name: str, field: str, *, optional: bool = False) -> int | None:
    if v in (None, "") and optional:
        return None
    n = as_int(v, 0, MAX_EPOCH_MS)
    if n is None:
        raise CorruptRecord(f"schedule {name!r} has a corrupt record: field {field}",
                            details={"schedule": name})
    return n


def stored_from(name: str, queue: str, h: dict[str, Any]) -> StoredSchedule:
    """A schedule record (Redis hash or SQLite row as a mapping of the same fields)."""
    s = parse_definition(name, h.get("def"))
    paused = str(h.get("paused")) == "1"
    last_job = h.get("last_job") or None
    return StoredSchedule(
        schedule=s.model_copy(update={"paused": paused}), queue=queue, paused=paused,
        next_ms=_num(h.get("next"), name, "next", optional=True),
        created_ms=_num(h.get("created"), name, "created") or 0,
        updated_ms=_num(h.get("updated"), name, "updated") or 0,
        fired=_num(h.get("fired"), name, "fired") or 0,
        skipped=_num(h.get("skipped"), name, "skipped") or 0,
        missed=_num(h.get("missed"), name, "missed") or 0,
        last_tick_ms=_num(h.get("last_tick"), name, "last_tick", optional=True),
        last_job_id=f"{queue}:{last_job}" if last_job else None,
    )


@dataclass(frozen=True, slots=True)
class DueRow:
    """A schedule a worker may have to fire: what planning needs of it."""

    name: str
    def_json: str
    fp: str
    next_ms: int


@dataclass(frozen=True, slots=True)
class FireEntry:
    """One conditional fire: `ticks` (oldest first) become jobs with `uids` and the stored
    next tick moves from `expect_next` to `new_next` (None: ended), `missed` counted, but
    only if the schedule still has fingerprint `fp`, is not paused and its next tick is still
    `expect_next`. A manual trigger has `expect_next` None and one tick, None (now)."""

    name: str
    fp: str
    expect_next: int | None
    new_next: int | None
    new_score: int | None
    ticks: tuple[int | None, ...]
    uids: tuple[str, ...]
    missed: int = 0

    def as_json(self) -> list[Any]:
        return [self.name, self.fp, -1 if self.expect_next is None else self.expect_next,
                -1 if self.new_next is None else self.new_next,
                -1 if self.new_score is None else self.new_score,
                [-1 if t is None else t for t in self.ticks], list(self.uids), self.missed]


@dataclass(frozen=True, slots=True)
class FireOutcome:
    """`status`: fired (the step was taken: `job_ids` made, `skipped` by overlap), or why
    nothing changed: gone (deleted), changed (replaced), paused, stale (another caller
    fired this tick), corrupt (the record does not parse)."""

    name: str
    status: str
    job_ids: tuple[str, ...] = ()
    skipped: int = 0


def plan(row: DueRow, now_ms: int) -> FireEntry | None:
    """The fire step of a due schedule at broker time `now_ms`, or None (nothing to do):
    ticks that came due while no worker ran, as its catch-up policy says, then (unless
    `overlap` is "skip") every tick of the lookahead window, so it is stored ahead of time
    and starts on time. Ahead ticks are bounded per step (MAX_AHEAD_TICKS)."""
    s, t = _cached(row.def_json)
    n = row.next_ms
    catch: list[int] = []
    missed = 0
    start: int | None = n
    if n <= now_ms:  # late (no worker ran): the catch-up policy decides
        p = plan_fire(t, n - 1, now_ms, s.catch_up, max_catch_up=s.max_catch_up)
        catch, missed, start = list(p.fire), p.missed, p.next_tick
    ahead: list[int] = []
    new_next = start
    if start is not None and s.overlap != "skip":
        for tick in _ticks_from(t, start):
            if tick > now_ms + LOOKAHEAD_MS or len(ahead) == MAX_AHEAD_TICKS:
                new_next = tick
                break
            ahead.append(tick)
        else:
            new_next = None
    ticks = catch + ahead
    if not ticks and new_next == n:
        return None
    return FireEntry(row.name, row.fp, n, new_next, due_score(s.overlap, new_next),
                     tuple(ticks), tuple(new_uid() for _ in ticks), missed)


def _ticks_from(t: Timing, first: int) -> Any:
    yield first
    yield from iter_ticks(t, first)


def first_next(schedule: Schedule, now_ms: int) -> int | None:
    """The next tick of a new (or retimed, or resumed) schedule: the first after now."""
    return next_tick(schedule.timing(), now_ms)


class ScheduleStore(Protocol):
    """Schedule storage beside a broker's jobs. Names that break the name rules are simply
    not found; the service (`schedules/service.py`) validates input."""

    async def now_ms(self) -> int: ...

    async def upsert(self, d: Definition, *, paused: bool | None, next_ms: int | None,
                     new_paused: bool = False) -> str:
        """Create or replace: "created", "replaced" or "same" (identical definition and
        paused state: nothing written, not even the next tick). `next_ms` (the first tick
        after now) is stored when the schedule is new, its timing changed, or it resumes;
        `paused` None keeps the stored state (a new schedule then takes `new_paused`)."""
        ...

    async def get(self, name: str) -> StoredSchedule | None: ...

    async def page(self, limit: int, cursor: str | None) -> tuple[list[StoredSchedule],
                                                                     str | None]:
        """By name, at most `limit` (1-LIST_MAX) after `cursor` (a name)."""
        ...

    async def delete(self, name: str) -> bool: ...

    async def set_paused(self, name: str, paused: bool, next_ms: int | None) -> bool:
        """Pause, or resume with next tick `next_ms`; False if there is no such schedule."""
        ...

    async def due(self, queue: str, limit: int = DUE_LIMIT) -> tuple[int, list[DueRow]]:
        """(broker now, schedules of `queue` whose fire time has come)."""
        ...

    async def fire(self, queue: str, entries: list[FireEntry]) -> list[FireOutcome]:
        """Carry out fire steps, each atomic and conditional on its own."""
        ...

    async def runs(self, name: str, queue: str, limit: int, cursor: str | None) -> Page:
        """The jobs the schedule made, newest first (`cursor`: a uid)."""
        ...

    async def job_states(self, job_ids: list[str]) -> list[JobState | None]: ...


def schedule_store(broker: Broker) -> ScheduleStore:
    """The store that keeps schedules next to `broker`'s jobs: the backend's own
    (`schedule_store()`, an optional capability; this layer names no backend)."""
    make = getattr(broker, "schedule_store", None)
    if make is None:
        raise TypeError(f"no schedule store for {type(broker).__name__}")
    store: ScheduleStore = make()
    return store

