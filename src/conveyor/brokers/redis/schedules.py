"""Schedules in Redis. A schedule lives in its target queue's slot: its hash
`<prefix>:{q}:sched:<name>`, the queue's due index `sched_due` and its runs index
`sruns:<name>`, written only by the `sched_*.lua` scripts (one per step, each atomic).

Names are global, so one registry key, `<prefix>:schedules` (a zset of `<name>:<queue>`,
score 0), finds a schedule's queue and lists names in order without cross-slot commands. It is
written before the schedule and cleaned after it: an entry whose hash is gone reads as not
found. A replace that moves a schedule to another queue deletes it from the old slot first.
"""

from __future__ import annotations

import json
import logging

from conveyor.brokers.base import Page
from conveyor.brokers.redis import reads
from conveyor.brokers.redis.core import RedisCore
from conveyor.brokers.redis.keys import QueueKeys
from conveyor.brokers.redis.replies import DueReply, Fired
from conveyor.errors import CorruptRecord, ValidationError
from conveyor.ids import UID_RE
from conveyor.jobs import JobState
from conveyor.queues import QUEUE_NAME_RE
from conveyor.schedules.store import (
    LOOKAHEAD_MS,
    RUNS_KEEP,
    Definition,
    DueRow,
    FireEntry,
    FireOutcome,
    StoredSchedule,
    stored_from,
)

log = logging.getLogger("conveyor.broker.redis")

_SEP = ":"
_READ = ("def", "paused", "next", "created", "updated", "fired", "skipped", "missed",
         "last_tick", "last_job")


def _valid_name(name: str) -> bool:
    return isinstance(name, str) and bool(QUEUE_NAME_RE.fullmatch(name))


class RedisScheduleStore:
    def __init__(self, core: RedisCore) -> None:
        self._b = core
        self._client = core.client
        self._keys = core.keys

    def _q(self, queue: str) -> QueueKeys:
        return self._keys.queue(queue)

    async def now_ms(self) -> int:
        return await self._b.now_ms()

    async def _queue_of(self, name: str) -> str | None:
        with self._b.unavailable():
            found = await self._client.zrangebylex(
                self._keys.schedules, f"[{name}{_SEP}", f"({name};")
        for member in found:
            queue = str(member)[len(name) + 1:]
            if QUEUE_NAME_RE.fullmatch(queue):
                return queue
        return None

    async def upsert(self, d: Definition, *, paused: bool | None, next_ms: int | None,
                     new_paused: bool = False) -> str:
        await self._b.writable()
        old = await self._queue_of(d.name)
        with self._b.unavailable():
            if old != d.queue:
                await self._client.zadd(self._keys.schedules, {f"{d.name}{_SEP}{d.queue}": 0})
        if old is not None and old != d.queue:  # moved to another queue (slot)
            await self._delete_in(d.name, old)
            with self._b.unavailable():
                await self._client.zrem(self._keys.schedules, f"{d.name}{_SEP}{old}")
        qk = self._q(d.queue)
        args = [d.name, d.def_json, d.job.to_json(), d.fp, d.tfp, d.schedule.overlap,
                "" if paused is None else ("1" if paused else "0"),
                -1 if next_ms is None else next_ms, LOOKAHEAD_MS, "1" if new_paused else "0"]
        res = await self._b.run("sched_upsert", [qk.sched_prefix + d.name, qk.sched_due],
                                 args)
        if old is not None and old != d.queue and res == "created":
            return "replaced"
        return str(res)

    async def get(self, name: str) -> StoredSchedule | None:
        if not _valid_name(name):
            return None
        queue = await self._queue_of(name)
        if queue is None:
            return None
        with self._b.unavailable():
            values = await self._client.hmget(self._q(queue).sched_prefix + name, _READ)
        h = dict(zip(_READ, values, strict=True))
        if h["def"] is None:
            return None
        return stored_from(name, queue, h)

    async def page(self, limit: int, cursor: str | None) -> tuple[list[StoredSchedule],
                                                                     str | None]:
        if cursor is not None and not _valid_name(cursor):
            raise ValidationError("invalid cursor", details={"cursor": cursor})
        start = f"[{cursor};" if cursor else "-"
        with self._b.unavailable():
            members = [str(m) for m in await self._client.zrangebylex(
                self._keys.schedules, start, "+", start=0, num=limit)]
            where = [m.partition(_SEP)[::2] for m in members]
            pipe = self._client.pipeline(transaction=False)
            for name, queue in where:
                pipe.hmget(self._q(queue).sched_prefix + name, _READ)
            rows = await pipe.execute() if where else []
        out: list[StoredSchedule] = []
        for (name, queue), values in zip(where, rows, strict=True):
            h = dict(zip(_READ, values, strict=True))
            if h["def"] is None:
                continue  # deleted meanwhile
            try:
                out.append(stored_from(name, queue, h))
            except CorruptRecord as exc:  # one bad record never hides the others
                log.warning("corrupt_schedule_record", extra={"error": exc.message})
        nxt = where[-1][0] if len(members) == limit else None
        return out, nxt

    async def _delete_in(self, name: str, queue: str) -> bool:
        qk = self._q(queue)
        res = await self._b.run(
            "sched_delete",
            [qk.sched_prefix + name, qk.sched_due, qk.sched_runs_prefix + name], [name])
        return bool(res)

    async def delete(self, name: str) -> bool:
        if not _valid_name(name):
            return False
        queue = await self._queue_of(name)
        if queue is None:
            return False
        existed = await self._delete_in(name, queue)
        with self._b.unavailable():
            await self._client.zrem(self._keys.schedules, f"{name}{_SEP}{queue}")
        return bool(existed)

    async def set_paused(self, name: str, paused: bool, next_ms: int | None) -> bool:
        if not _valid_name(name):
            return False
        queue = await self._queue_of(name)
        if queue is None:
            return False
        await self._b.writable()
        qk = self._q(queue)
        res = await self._b.run(
            "sched_pause", [qk.sched_prefix + name, qk.sched_due],
            [name, "1" if paused else "0", -1 if next_ms is None else next_ms, LOOKAHEAD_MS])
        return bool(res == "ok")

    async def due(self, queue: str, limit: int = 200) -> tuple[int, list[DueRow]]:
        qk = self._q(queue)
        got = DueReply.decode(
            await self._b.run("sched_due", [qk.sched_due, qk.sched_prefix], [limit]))
        return got.now_ms, [DueRow(d.name, d.definition, d.fingerprint, d.next_ms)
                            for d in got.due]

    async def fire(self, queue: str, entries: list[FireEntry]) -> list[FireOutcome]:
        if not entries:
            return []
        await self._b.writable()
        qk = self._q(queue)
        keys = [qk.sched_prefix, qk.sched_due, qk.job_prefix, qk.idem_prefix, qk.queued,
                qk.scheduled, qk.seq, qk.marker, qk.listing, qk.sched_runs_prefix]
        args = [json.dumps([e.as_json() for e in entries]), LOOKAHEAD_MS, RUNS_KEEP]
        fired = Fired.decode_all(await self._b.run("sched_fire", keys, args))
        out = [FireOutcome(e.name, f.status, tuple(f"{queue}:{u}" for u in f.uids), f.skipped)
               for e, f in zip(entries, fired, strict=True)]
        if any(o.job_ids for o in out):  # after the write, as every enqueue; never a phantom
            await self._b.remember_queues([queue])
        return out

    async def runs(self, name: str, queue: str, limit: int, cursor: str | None) -> Page:
        if cursor is not None and not UID_RE.fullmatch(cursor):
            raise ValidationError("invalid cursor", details={"cursor": cursor})
        top = f"({cursor}" if cursor else "+"
        with self._b.unavailable():
            uids = [str(u) for u in await self._client.zrevrangebylex(
                self._q(queue).sched_runs_prefix + name, top, "-", start=0, num=limit)]
        jobs = await reads.listed(self._b, [(queue, u) for u in uids])
        return Page(items=jobs, next_cursor=uids[-1] if len(uids) == limit else None)

    async def job_states(self, job_ids: list[str]) -> list[JobState | None]:
        jobs = await reads.get_many(self._b, job_ids)
        return [None if j is None else j.state for j in jobs]

