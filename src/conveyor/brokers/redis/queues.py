"""Calls about whole queues on Redis: counts, paused flags and forgetting an empty queue.

Counts and flags of any number of queues go in pipelines of `CHUNK` queues (one round trip
each, never one concurrent call per queue), so 10,000 queues cost a few round trips and one
connection, whatever the pool size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.brokers.base import (
    SeriesPoint,
    check_series_window,
    queue_not_empty,
    queue_not_found,
    series_hours,
)
from conveyor.brokers.redis.core import RedisCore
from conveyor.brokers.redis.replies import ForgetReply, ints
from conveyor.jobs import JobState
from conveyor.queues import validate_queue_name

#: queues per pipeline
CHUNK = 500
_STATES = tuple(JobState)


def _count(value: object) -> int:
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() and len(text) <= 15 else 0


class RedisQueues:
    def __init__(self, core: RedisCore) -> None:
        self._b = core

    async def stats(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """counts.lua once per queue (a third of the cost of one ZCARD per state)."""
        counts: list[list[int]] = []
        for start in range(0, len(names), CHUNK):
            counts += [ints(r, len(_STATES), "counts") for r in await self._b.run_many([
                ("counts", [self._b.keys.queue(q).index(s) for s in _STATES], [])
                for q in names[start : start + CHUNK]
            ])]
        return {
            q: {str(s): c for s, c in zip(_STATES, row, strict=True)}
            for q, row in zip(names, counts, strict=True)
        }

    async def ready_ages(self, names: Sequence[str]) -> dict[str, int]:
        """ready_age.lua once per queue, in pipelines of CHUNK: ms since the oldest ready job
        became due (0: none waits), by the broker's clock."""
        rows: list[list[int]] = []
        for start in range(0, len(names), CHUNK):
            rows += [ints(r, 2, "ready_age") for r in await self._b.run_many([
                ("ready_age", [qk.job_prefix, qk.queued, qk.scheduled], [])
                for qk in (self._b.keys.queue(q) for q in names[start : start + CHUNK])
            ])]
        return {q: max(now - due, 0) if due >= 0 else 0
                for q, (now, due) in zip(names, rows, strict=True)}

    async def series(self, queue: str, minutes: int, type_: str | None,
                     step_s: int | None = None) -> list[SeriesPoint]:
        """Per minute: HMGET of exactly the window's fields from its hour hashes (at most 25),
        pipelined; per hour: series_hours.lua over the window's hours (at most 169). One round
        trip after the clock's. A field that does not read as a count reads 0."""
        validate_queue_name(queue)
        step = check_series_window(minutes, type_, step_s)
        last = await self._b.now_ms() // 60_000
        suffix = type_ or ""
        qk = self._b.keys.queue(queue)
        if step == 3600:
            hours = series_hours(last, minutes)
            flat = ints(await self._b.run("series_hours", [qk.series_prefix],
                                          [hours.start, hours.stop - 1, suffix]),
                        3 * len(hours), "series_hours")
            return [SeriesPoint(hour * 60, *flat[3 * i : 3 * i + 3])
                    for i, hour in enumerate(hours)]
        window = list(range(last - minutes + 1, last + 1))
        by_hour: dict[int, list[int]] = {}
        for minute in window:
            by_hour.setdefault(minute // 60, []).append(minute)
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=False)
            for hour, mins in by_hour.items():
                pipe.hmget(qk.series(hour), [f"{m}:{k}:{suffix}" for m in mins for k in "sfd"])
            replies = await pipe.execute()
        points = []
        for mins, values in zip(by_hour.values(), replies, strict=True):
            for i, minute in enumerate(mins):
                s, f, d = (_count(v) for v in values[3 * i : 3 * i + 3])
                points.append(SeriesPoint(minute, s, f, d))
        return points

    async def paused(self, names: Sequence[str]) -> set[str]:
        flags: list[int] = []
        with self._b.unavailable():
            for start in range(0, len(names), CHUNK):
                pipe = self._b.client.pipeline(transaction=False)
                for q in names[start : start + CHUNK]:
                    pipe.exists(self._b.keys.queue(q).paused)
                flags += await pipe.execute()
        return {q for q, flag in zip(names, flags, strict=True) if flag}

    async def pause(self, queue: str) -> None:
        key = self._b.keys.queue(queue).paused
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=False)
            pipe.set(key, "1")
            await self._send_waited(pipe, [key])

    async def resume(self, queue: str) -> None:
        qk = self._b.keys.queue(queue)
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=False)
            pipe.delete(qk.paused)
            pipe.lpush(qk.marker, "1")
            pipe.ltrim(qk.marker, 0, 0)
            await self._send_waited(pipe, [qk.paused])

    async def _send_waited(self, pipe: Any, written: Sequence[str]) -> None:
        """The pipeline, then (when writes wait for replicas) WAIT on the nodes written."""
        waits = self._b.add_waits(pipe, written) if self._b.wait_replicas else 0
        replies = await pipe.execute()
        self._b.confirmed(replies[len(replies) - waits:] if waits else [])

    async def forget(self, queue: str) -> None:
        """Drop an empty queue from the registry, in three steps each on one slot (the
        registry `cv:queues` has a slot of its own, so no script touches it with queue keys):
        forget_queue.lua empties the queue's bookkeeping only if it holds no job; SREM drops
        the name; a last look at the queue puts the name back if a job arrived between the
        two (an enqueue registers its queue AFTER its script, so either that SADD comes
        after the SREM, or its job is seen here). Each step is idempotent: a crash between
        them leaves the name or an empty queue, and calling again finishes the job."""
        validate_queue_name(queue)
        qk = self._b.keys.queue(queue)
        indexes = [qk.index(s) for s in _STATES]
        keys = [qk.paused, qk.marker, qk.seq, qk.deaths, qk.listing, *indexes, qk.events,
                qk.cursors, qk.cursor_prefix, qk.limits, qk.weights, qk.ready, qk.blocked,
                qk.limit_key(""), qk.key_runs, qk.key_passes, qk.idle_keys]
        res = ForgetReply.decode(await self._b.run("forget_queue", keys, []))
        if res.held is not None:
            raise queue_not_empty(queue, res.held)
        with self._b.unavailable():
            removed = int(await self._b.client.srem(self._b.keys.queues, queue))
            if not removed and not res.was_paused:
                raise queue_not_found(queue)
            pipe = self._b.client.pipeline(transaction=False)
            for key in (qk.listing, *indexes):
                pipe.zcard(key)
            if any(int(n) for n in await pipe.execute()):
                await self._b.client.sadd(self._b.keys.queues, queue)  # a job came meanwhile
