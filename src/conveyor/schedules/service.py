"""What the client, the API, the CLI and the worker call: schedules saved (the job template
checked against the handler registry like an enqueue), read back as `ScheduleView`, paused,
triggered, and fired (`fire_due`, run by every worker's maintenance for its queues).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from conveyor.brokers.base import Page
from conveyor.errors import (
    ConveyorError,
    PayloadTooLarge,
    ScheduleNotFound,
    UnknownJobType,
    ValidationError,
)
from conveyor.ids import new_uid
from conveyor.jobs import Job, JobState
from conveyor.schedules.spec import CatchUp, Overlap, PreviewRequest, Schedule
from conveyor.schedules.store import (
    DUE_LIMIT,
    LIST_MAX,
    MAX_AHEAD_TICKS,
    Definition,
    FireEntry,
    FireOutcome,
    ResolvedJob,
    ScheduleStore,
    StoredSchedule,
    first_next,
    plan,
    schedule_store,
)
from conveyor.schedules.ticks import iter_ticks, preview
from conveyor.timeutil import ms_to_datetime

if TYPE_CHECKING:
    from conveyor.brokers.base import Broker
    from conveyor.jobs import JobSpec
    from conveyor.schedules.spec import JobTemplate

#: what the client gives the schedules: the enqueue checks of a job template (type known,
#: payload valid, the handler's defaults), so a schedule is checked as an enqueue would be
SpecBuilder = Callable[["JobTemplate"], "JobSpec"]

log = logging.getLogger("conveyor.schedules")

#: entries sent per fire call (each call is one script / transaction)
FIRE_CHUNK = 50
#: due reads one `fire_due` call makes at most (DUE_LIMIT schedules each)
DUE_ROUNDS = 10
NEXT_RUNS = 5


class LastRun(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    tick: datetime | None = Field(description="null for a manual trigger")
    job_id: str
    state: JobState | None = Field(description="null once the job is gone (retention)")


class ScheduleCounts(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    fired: int
    skipped: int
    missed: int


class ScheduleJob(BaseModel):
    """The job template as stored (`max_attempts` / `timeout_s` null: the handler's)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    type: str
    payload: JsonValue
    queue: str
    priority: int
    max_attempts: int | None
    timeout_s: float | None


class ScheduleView(BaseModel):
    """A schedule as the API shows it: its definition, its description in words, its next
    runs (none while paused), its last run and its counts."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    name: str
    cron: str | None
    every_s: float | None
    timezone: str
    job: ScheduleJob
    start_at: datetime | None
    end_at: datetime | None
    paused: bool
    overlap: Overlap
    catch_up: CatchUp
    max_catch_up: int
    description: str = Field(description="the spec in words")
    next_runs: list[datetime]
    last_run: LastRun | None
    counts: ScheduleCounts
    created_at: datetime
    updated_at: datetime


class SchedulePage(BaseModel):
    items: list[ScheduleView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PutResult:
    schedule: ScheduleView
    created: bool
    #: False when the body was identical to the stored one (nothing written)
    changed: bool


def _not_found(name: str) -> ScheduleNotFound:
    return ScheduleNotFound(f"schedule {str(name)[:64]!r} not found",
                            details={"schedule": str(name)[:64]})


def _next_runs(st: StoredSchedule, now_ms: int) -> builtins.list[datetime]:
    """The next ticks still to come (those fired ahead included), from the stored next tick
    when it is late (no worker ran); none while paused or once ended."""
    if st.paused or st.next_ms is None:
        return []
    after = min(st.next_ms - 1, now_ms)
    ticks = preview(st.schedule.timing(), after, NEXT_RUNS)
    return [ms_to_datetime(t) for t in ticks]


def view_of(st: StoredSchedule, last_state: JobState | None, now_ms: int) -> ScheduleView:
    s = st.schedule
    last = None if st.last_job_id is None else LastRun(
        tick=ms_to_datetime(st.last_tick_ms), job_id=st.last_job_id, state=last_state)
    return ScheduleView(
        name=s.name, cron=s.cron, every_s=s.every_s, timezone=s.timezone,
        job=ScheduleJob.model_validate(s.job.model_dump()),
        start_at=s.start_at, end_at=s.end_at, paused=st.paused, overlap=s.overlap,
        catch_up=s.catch_up, max_catch_up=s.max_catch_up, description=s.describe(),
        next_runs=_next_runs(st, now_ms), last_run=last,
        counts=ScheduleCounts(fired=st.fired, skipped=st.skipped, missed=st.missed),
        created_at=ms_to_datetime(st.created_ms),
        updated_at=ms_to_datetime(st.updated_ms),
    )


class AsyncSchedules:
    """`cv.schedules` of an `AsyncConveyor` (given its broker, its enqueue checks and its
    `get`: this layer does not import the client)."""

    def __init__(self, broker: Broker, build_spec: SpecBuilder,
                 get: Callable[[str], Awaitable[Job]]) -> None:
        self._broker = broker
        self._build_spec = build_spec
        self._get = get
        self._store: ScheduleStore | None = None

    @property
    def store(self) -> ScheduleStore:
        if self._store is None:
            self._store = schedule_store(self._broker)
        return self._store

    # --- definitions ----------------------------------------------------------------------
    def resolve(self, schedule: Schedule) -> ResolvedJob:
        """The job template checked as an enqueue would be (type known, payload valid) with
        the handler's defaults; `ValidationError` with `details` locating the problem."""
        try:
            spec = self._build_spec(schedule.job)
        except UnknownJobType as exc:
            raise ValidationError(exc.message, details=[
                {"loc": ["job", "type"], "msg": exc.message, "type": "unknown_job_type"}
            ]) from None
        except PayloadTooLarge:
            raise
        except ValidationError as exc:
            details = exc.details if isinstance(exc.details, list) else []
            raise ValidationError(exc.message, details=[
                {**d, "loc": ["job", "payload", *d.get("loc", [])]} if isinstance(d, dict)
                else d for d in details
            ] or exc.details) from None
        return ResolvedJob(spec.type, spec.payload_json, spec.priority, spec.max_attempts,
                           spec.timeout_ms)

    async def put(self, schedule: Schedule | Mapping[str, Any], *,
                  keep_paused: bool = False) -> PutResult:
        """Create or replace. An identical body changes nothing (not even the next tick);
        a new timing (or a resume) counts ticks from now. `keep_paused`: leave the stored
        paused state alone (schedules declared in code, synced at worker start)."""
        s = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
        d = Definition.of(s, self.resolve(s))
        now = await self.store.now_ms()
        outcome = await self.store.upsert(
            d, paused=None if keep_paused else s.paused, next_ms=first_next(s, now),
            new_paused=s.paused)
        return PutResult(await self.get(s.name), outcome == "created", outcome != "same")

    async def sync(self, schedules: Sequence[Schedule]) -> dict[str, str]:
        """Declared schedules, saved idempotently (paused state kept): name -> "created",
        "replaced" or "same". Fifty workers starting at once change nothing."""
        out: dict[str, str] = {}
        for s in schedules:
            d = Definition.of(s, self.resolve(s))
            now = await self.store.now_ms()
            out[s.name] = await self.store.upsert(d, paused=None, next_ms=first_next(s, now),
                                                  new_paused=s.paused)
        return out

    async def _stored(self, name: str) -> StoredSchedule:
        st = await self.store.get(name)
        if st is None:
            raise _not_found(name)
        return st

    async def _views(self, stored: Sequence[StoredSchedule]) -> list[ScheduleView]:
        """Views with their last run: the newest job whose tick has come (a tick fired
        ahead is not a run yet), and its state."""
        now = await self.store.now_ms()
        shown = [await self._last_come(st, now) for st in stored]
        ids = [st.last_job_id for st in shown if st.last_job_id]
        states = dict(zip(ids, await self.store.job_states(ids), strict=True)) if ids else {}
        return [view_of(st, states.get(st.last_job_id) if st.last_job_id else None, now)
                for st in shown]

    async def _last_come(self, st: StoredSchedule, now: int) -> StoredSchedule:
        if st.last_tick_ms is None or st.last_tick_ms <= now:
            return st
        # fired ahead: look back through its newest runs (at most the ticks fired ahead)
        page = await self.store.runs(st.schedule.name, st.queue, MAX_AHEAD_TICKS + 2, None)
        for job in page.items:
            tick = None if job.schedule is None else job.schedule.tick
            at = _to_ms(tick) if tick is not None else _to_ms(job.created_at)
            if at <= now:
                return replace(st, last_job_id=job.id,
                               last_tick_ms=None if tick is None else _to_ms(tick))
        return replace(st, last_job_id=None, last_tick_ms=None)

    async def get(self, name: str) -> ScheduleView:
        return (await self._views([await self._stored(name)]))[0]

    async def list(self, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_MAX:
            raise ValidationError(f"limit must be between 1 and {LIST_MAX}",
                                  details={"limit": limit})
        stored, nxt = await self.store.page(limit, cursor)
        return SchedulePage(items=await self._views(stored), next_cursor=nxt)

    async def delete(self, name: str) -> None:
        if not await self.store.delete(name):
            raise _not_found(name)

    async def pause(self, name: str) -> ScheduleView:
        if not await self.store.set_paused(name, True, None):
            raise _not_found(name)
        return await self.get(name)

    async def resume(self, name: str) -> ScheduleView:
        st = await self._stored(name)
        now = await self.store.now_ms()
        if not await self.store.set_paused(name, False, first_next(st.schedule, now)):
            raise _not_found(name)
        return await self.get(name)

    async def trigger(self, name: str) -> Job:
        """Enqueue the schedule's job now, outside the tick sequence (`schedule.tick` null)."""
        for _ in range(3):  # a replace between the read and the fire: read again
            st = await self._stored(name)
            d = Definition.of(st.schedule, self.resolve(st.schedule))
            entry = FireEntry(name, d.fp, None, None, None, (None,), (new_uid(),))
            (res,) = await self.store.fire(st.queue, [entry])
            if res.status == "fired" and res.job_ids:
                return await self._get(res.job_ids[0])
            if res.status == "gone":
                raise _not_found(name)
        raise ConveyorError(f"schedule {name!r} kept changing; try again",
                            code="invalid_state")

    async def runs(self, name: str, limit: int = 50, cursor: str | None = None) -> Page:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000", details={"limit": limit})
        st = await self._stored(name)
        return await self.store.runs(name, st.queue, limit, cursor)

    async def preview(self, request: PreviewRequest | Mapping[str, Any]) -> builtins.list[datetime]:
        req = request if isinstance(request, PreviewRequest) else _parse_preview(request)
        after = req.after
        after_ms = await self.store.now_ms() if after is None else _to_ms(after)
        t = req.timing()
        ticks: builtins.list[int] = []
        for tick in iter_ticks(t, after_ms):
            ticks.append(tick)
            if len(ticks) == req.count:
                break
        return [ms_to_datetime(x) for x in ticks]

    # --- the worker's part ----------------------------------------------------------------
    async def fire_due(self, queue: str) -> builtins.list[FireOutcome]:
        """Fire the due schedules of `queue`: a read of at most DUE_LIMIT, then their fire
        steps, again while full reads come back (at most DUE_ROUNDS reads a call); safe to
        run from any number of workers at once."""
        out: builtins.list[FireOutcome] = []
        for _ in range(DUE_ROUNDS):
            done, full = await self._fire_some(queue)
            out += done
            if not full:
                break
        return out

    async def _fire_some(self, queue: str) -> tuple[builtins.list[FireOutcome], bool]:
        now, rows = await self.store.due(queue, DUE_LIMIT)
        entries: builtins.list[FireEntry] = []
        for row in rows:
            try:
                entry = plan(row, now)
            except ConveyorError as exc:
                log.warning("schedule_unreadable", extra={"schedule": row.name,
                                                          "error": exc.message})
                continue
            except Exception:
                log.exception("schedule_plan_failed", extra={"schedule": row.name})
                continue
            if entry is not None:
                entries.append(entry)
        out: builtins.list[FireOutcome] = []
        for start in range(0, len(entries), FIRE_CHUNK):
            out += await self.store.fire(queue, entries[start:start + FIRE_CHUNK])
        # another read only if this one was full and moved something on (no busy loop over
        # schedules that cannot be fired, e.g. overlap "skip" ones waiting for their tick)
        return out, len(rows) == DUE_LIMIT and any(o.status == "fired" for o in out)


def _to_ms(value: datetime) -> int:
    from conveyor.schedules.spec import to_ms

    return to_ms(value)


def _parse_preview(data: Mapping[str, Any]) -> PreviewRequest:
    import pydantic

    from conveyor.schedules.spec import error_details

    try:
        return PreviewRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError("invalid preview request", details=error_details(exc)) from None


class Schedules:
    """`cv.schedules` of the synchronous `Conveyor`: the same calls, run on its loop."""

    def __init__(self, inner: AsyncSchedules, call: Any) -> None:
        self._inner = inner
        self._call = call

    def put(self, schedule: Schedule | Mapping[str, Any], *,
            keep_paused: bool = False) -> PutResult:
        return self._call(self._inner.put(schedule, keep_paused=keep_paused))  # type: ignore[no-any-return]

    def sync(self, schedules: Sequence[Schedule]) -> dict[str, str]:
        return self._call(self._inner.sync(schedules))  # type: ignore[no-any-return]

    def get(self, name: str) -> ScheduleView:
        return self._call(self._inner.get(name))  # type: ignore[no-any-return]

    def list(self, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        return self._call(self._inner.list(limit, cursor))  # type: ignore[no-any-return]

    def delete(self, name: str) -> None:
        self._call(self._inner.delete(name))

    def pause(self, name: str) -> ScheduleView:
        return self._call(self._inner.pause(name))  # type: ignore[no-any-return]

    def resume(self, name: str) -> ScheduleView:
        return self._call(self._inner.resume(name))  # type: ignore[no-any-return]

    def trigger(self, name: str) -> Job:
        return self._call(self._inner.trigger(name))  # type: ignore[no-any-return]

    def runs(self, name: str, limit: int = 50, cursor: str | None = None) -> Page:
        return self._call(self._inner.runs(name, limit, cursor))  # type: ignore[no-any-return]

    def preview(self, request: PreviewRequest | Mapping[str, Any]) -> builtins.list[datetime]:
        return self._call(self._inner.preview(request))  # type: ignore[no-any-return]
