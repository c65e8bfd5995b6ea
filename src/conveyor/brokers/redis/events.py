"""The Redis broker's event log (issue 17): one stream per queue, `cv:{q}:events`, appended
by `emit_event` (_lib.lua) inside every transition's script, trimmed approximately to
`CONVEYOR_EVENTS_MAXLEN` there. Cursors are stream ids (`<ms>-<seq>`; `0` is the start).

Reads are a script (`read_events`: the entries, the stream's last generated and first ids
and whether it ever trimmed, in one step) and, for waiting, `XREAD BLOCK` on the blocking pool.
"""

from __future__ import annotations

import re
from typing import Any, cast

from conveyor.brokers.base import (
    LOG_START,
    EventPage,
    bad_cursor,
    check_cursor_name,
    check_event_limit,
)
from conveyor.brokers.redis.core import RedisCore
from conveyor.brokers.redis.records import job_from_hash
from conveyor.brokers.redis.replies import EventsReply
from conveyor.errors import JobNotFound, ValidationError
from conveyor.events.model import JobEvent
from conveyor.events.records import event_from_record
from conveyor.ids import split_job_id
from conveyor.jobs import Job
from conveyor.queues import validate_queue_name

_ID_RE = re.compile(r"^(\d{1,15})-(\d{1,19})$")
#: longest block of one wait_events call
MAX_BLOCK_S = 5.0


def stream_id(cursor: str) -> tuple[int, int]:
    """A cursor as (ms, seq); `0` is the start. Anything else is a ValidationError."""
    if cursor == LOG_START:
        return (0, 0)
    m = _ID_RE.fullmatch(cursor)
    if m is None:
        raise bad_cursor(cursor)
    return int(m.group(1)), int(m.group(2))


def _sid(value: Any) -> tuple[int, int]:
    m = _ID_RE.fullmatch(str(value))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _rid(sid: tuple[int, int]) -> str:
    return f"{sid[0]}-{sid[1]}"


def decode(queue: str, rows: Any) -> list[JobEvent]:
    out = []
    for entry_id, fields in rows:
        f = fields if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2],
                                                             strict=True))
        ev = event_from_record(queue, str(entry_id), f.get("u"), f.get("t"), f.get("e"),
                               f.get("s"), f.get("a"), f.get("at"), f.get("c"), f.get("p"))
        if ev is not None:
            out.append(ev)
    return out


class RedisEvents:
    def __init__(self, core: RedisCore) -> None:
        self._b = core

    async def read(self, queue: str, after: str, limit: int) -> EventPage:
        validate_queue_name(queue)
        check_event_limit(limit)
        start = stream_id(after)
        key = self._b.keys.queue(queue).events
        got = EventsReply.decode(await self._b.run("read_events", [key], [_rid(start), limit]))
        ahead = start > _sid(got.last)  # a cursor the log never reached: it lost writes
        if ahead:
            got = EventsReply.decode(await self._b.run("read_events", [key], ["0-0", limit]))
        # trimming drops the oldest entries: those after the cursor may be gone when the
        # cursor is older than the oldest entry kept (conservative: the cursor's own event
        # may have been the only one dropped)
        gap = ahead or (got.trimmed and start < _sid(got.first))
        # the cursor moves past every row read, also past one that did not parse
        rows = got.rows
        cursor = str(rows[-1][0]) if rows else (LOG_START if ahead else after)
        return EventPage(queue=queue, events=decode(queue, rows), cursor=cursor, gap=gap)

    async def wait(self, queue: str, after: str, timeout_s: float) -> bool:
        validate_queue_name(queue)
        start = stream_id(after)
        block_ms = max(1, int(min(max(timeout_s, 0.0), MAX_BLOCK_S) * 1000))
        key = self._b.keys.queue(queue).events
        with self._b.unavailable():
            got = await self._b.blocking_client.xread({key: _rid(start)}, count=1,
                                                      block=block_ms)
        return bool(got)

    async def tail(self, queue: str) -> str:
        validate_queue_name(queue)
        with self._b.unavailable():
            rows = await self._b.client.xrevrange(self._b.keys.queue(queue).events, count=1)
        return str(rows[0][0]) if rows else LOG_START

    async def get_with_cursor(self, job_id: str) -> tuple[Job, str]:
        queue, uid = split_job_id(job_id)
        qk = self._b.keys.queue(queue)
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=True)  # MULTI: one slot, one step
            pipe.hgetall(qk.job(uid))
            pipe.xrevrange(qk.events, count=1)
            h, rows = await pipe.execute()
        if not h:
            raise JobNotFound(f"job {job_id} not found", details={"job_id": job_id})
        return job_from_hash(queue, uid, cast(dict[str, str], h)), (str(rows[0][0]) if rows
                                                                      else LOG_START)

    async def load_cursor(self, queue: str, name: str) -> str | None:
        validate_queue_name(queue)
        with self._b.unavailable():
            value = await self._b.client.get(self._b.keys.queue(queue).cursor(
                check_cursor_name(name)))
        if value is None:
            return None
        try:
            stream_id(str(value))
        except ValidationError:
            return None  # a damaged record: as if never saved
        return str(value)

    async def save_cursor(self, queue: str, name: str, cursor: str) -> None:
        """The cursor and its name in the queue's `cursors` set, in one MULTI (one slot),
        so `forget_queue` finds every cursor to delete without a scan."""
        validate_queue_name(queue)
        stream_id(cursor)
        qk = self._b.keys.queue(queue)
        name = check_cursor_name(name)
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=True)
            pipe.set(qk.cursor(name), cursor)
            pipe.sadd(qk.cursors, name)
            await pipe.execute()

