"""The Redis broker's transitions: each a script on one queue's slot (see lua/), batch calls
grouped by queue into bounded calls sent in few round trips (batches.py). The twins of
`brokers/sqlite/transitions.py`; arguments arrive checked (brokers/shell.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from conveyor import joblogs
from conveyor.brokers.base import (
    SERIES_ROLLUP_HOURS,
    AckItem,
    FailItem,
    FetchBatch,
    HeartbeatReply,
    LeaseRef,
    LogAppend,
    ProgressItem,
    ReapResult,
    check_progress,
)
from conveyor.brokers.redis import batches
from conveyor.brokers.redis.core import MAX_WAIT_S, RedisCore, script_errors
from conveyor.brokers.redis.keys import QueueKeys
from conveyor.brokers.redis.replies import FetchReply, HeartbeatPart, ReapReply, RetryReply
from conveyor.brokers.shell import delivery
from conveyor.brokers.text import safe_json, safe_message, safe_name, safe_traceback
from conveyor.ids import lease_nonce
from conveyor.jobs import RESULT_PREVIEW_CHARS, JobState

log = logging.getLogger("conveyor.broker.redis")

T = TypeVar("T")


def _batch(core: RedisCore, script: str, items: Sequence[T], job_id: Callable[[T], str],
           keys_of: Callable[[QueueKeys], list[str]], row_of: Callable[[str, T], Any],
           lead: Sequence[Any] = ()) -> batches.Batch:
    return batches.build(script, items, job_id, lambda q: keys_of(core.qk(q)), row_of,
                         max_bytes=core.max_call_bytes, lead=lead)


async def _each(core: RedisCore, batch: batches.Batch, n: int) -> list[Any]:
    """The batch's calls sent; each item's reply at its position."""
    return batch.spread(await core.run_many(batch.calls), n)


def _set_aside(queue: str, count: int) -> None:
    if count:
        log.warning("corrupt_jobs_set_aside", extra={"queue": queue, "count": count})


def _fetch_call(core: RedisCore, queue: str, count: int, worker_id: str,
                lease_ms: int) -> tuple[list[str], list[Any]]:
    qk = core.qk(queue)
    keys = [qk.job_prefix, qk.queued, qk.scheduled, qk.running, qk.seq, qk.marker, qk.paused,
            qk.dead, qk.deaths]
    return keys, [max(count, 0), lease_ms, safe_name(worker_id), 1000, lease_nonce()]


def _fetched(queue: str, raw: Any) -> FetchBatch:
    reply = FetchReply.decode(raw)
    _set_aside(queue, reply.set_aside)
    deliveries = [
        delivery(queue, r.uid, token=r.token, type=r.type, payload=r.payload,
                 attempts=r.attempts, max_attempts=r.max_attempts, timeout_ms=r.timeout_ms,
                 due_ms=r.due_ms, leased_ms=reply.now_ms, trace=r.trace)
        for r in reply.rows
    ]
    return FetchBatch(deliveries, reply.now_ms, reply.next_due_ms)


async def fetch(core: RedisCore, queue: str, count: int, worker_id: str,
                lease_ms: int) -> FetchBatch:
    keys, args = _fetch_call(core, queue, count, worker_id, lease_ms)
    return _fetched(queue, await core.run("fetch", keys, args))


#: how long a wait's ticket outlives its BLPOP timeout (a Redis slow to answer)
TICKET_SLACK_MS = 60_000


async def wait_and_fetch(core: RedisCore, queue: str, count: int, worker_id: str,
                         lease_ms: int, timeout_s: float, ticket: str) -> FetchBatch:
    """BLPOP on the queue's wake marker and the fetch script in one pipeline on one blocking
    connection: Redis runs the script the moment the BLPOP returns (woken or timed out), so
    the lease is taken in the same round trip as the wake-up. The pipeline first arms the
    wait's ticket (`SET NX`): the fetch leases only if it is still armed when it runs, so
    `revoke_wait` can stop a fetch already queued on the server (a stopping worker, a
    broker found unsafe). Every key is in the queue's slot: on Cluster one node's
    pipeline too."""
    keys, args = _fetch_call(core, queue, count, worker_id, lease_ms)
    qk = core.qk(queue)
    tk = qk.wait_ticket(ticket)
    keys.append(tk)
    with script_errors(), core.unavailable():
        pipe = core.blocking_client.pipeline(transaction=False)
        pipe.set(tk, "armed", nx=True, px=int(timeout_s * 1000) + TICKET_SLACK_MS)
        pipe.blpop([qk.marker], timeout=timeout_s)
        # execute_command, not .evalsha: see RedisCore._send
        pipe.execute_command("EVALSHA", core.scripts.sha["fetch"], len(keys), *keys, *args)
        armed, woke, raw = await pipe.execute(raise_on_error=False)
    for reply in (armed, woke):
        if isinstance(reply, Exception):  # e.g. OOM on the SET: the fetch leased nothing
            with core.unavailable():
                raise reply
    if isinstance(raw, NoScriptError):  # script cache flushed: core.run loads it and sends
        raw = await core.run("fetch", keys, args)  # the same call (the ticket unconsumed)
    if isinstance(raw, Exception):
        with script_errors(), core.unavailable():
            raise raw
    return _fetched(queue, raw)


async def revoke_wait(core: RedisCore, queue: str, ticket: str) -> str | None:
    """Turn off the ticket of a `wait_and_fetch`: its fetch, if it has not run, leases
    nothing. Returns what the ticket said: "armed" (it had not run), "revoked" (already
    revoked) or None (it ran, or its SET had not reached Redis yet)."""
    reply = await core.run("revoke_wait", [core.qk(queue).wait_ticket(ticket)],
                           [TICKET_SLACK_MS + int(MAX_WAIT_S * 1000)])
    return None if reply is None else str(reply)


async def heartbeat(core: RedisCore, leases: Sequence[LeaseRef], lease_ms: int) -> HeartbeatReply:
    batch = _batch(core, "heartbeat", leases, lambda r: r.job_id,
                   lambda qk: [qk.job_prefix, qk.running],
                   lambda uid, ref: [uid, ref.token], lead=[lease_ms])
    out = HeartbeatReply()
    for (q, _), reply in zip(batch.parts, await core.run_many(batch.calls), strict=True):
        part = HeartbeatPart.decode(reply)
        out.extend(f"{q}:{uid}" for uid in part.lost)
        for uid, actor in part.cancels.items():
            out.cancel_requested[f"{q}:{uid}"] = actor
    return out


async def cancel_running(core: RedisCore, leases: Sequence[LeaseRef]) -> list[bool]:
    batch = _batch(
        core, "cancel_running", leases, lambda r: r.job_id,
        lambda qk: [qk.job_prefix, qk.running, qk.cancelled, qk.dead, qk.deaths],
        lambda uid, ref: [uid, ref.token],
    )
    return [bool(ok) for ok in await _each(core, batch, len(leases))]


async def append_logs(core: RedisCore, items: Sequence[LogAppend]) -> list[bool]:
    batch = _batch(core, "append_logs", items, lambda i: i.job_id,
                   lambda qk: [qk.job_prefix, qk.logs_prefix],
                   lambda uid, i: [uid, i.token, list(i.lines)],
                   lead=[joblogs.MAX_LINES, joblogs.MAX_BYTES])
    return [bool(ok) for ok in await _each(core, batch, len(items))]


def _ack_row(uid: str, item: AckItem) -> list[Any]:
    """[uid, token, result, preview ('' when the result is its own preview), result size]:
    listings read the preview, never the result (see `reads.listed`)."""
    result = safe_json(item.result_json)
    preview = "" if len(result) <= RESULT_PREVIEW_CHARS else result[:RESULT_PREVIEW_CHARS]
    return [uid, item.token, result, preview, len(result)]


async def ack(core: RedisCore, items: Sequence[AckItem]) -> list[bool]:
    batch = _batch(
        core, "ack", items, lambda a: a.job_id,
        lambda qk: [qk.job_prefix, qk.running, qk.succeeded, qk.dead, qk.deaths],
        _ack_row,
    )
    return [bool(ok) for ok in await _each(core, batch, len(items))]


async def fail(core: RedisCore, items: Sequence[FailItem]) -> list[JobState | None]:
    batch = _batch(
        core, "fail", items, lambda f: f.job_id,
        lambda qk: [qk.job_prefix, qk.running, qk.queued, qk.scheduled, qk.dead, qk.seq,
                    qk.marker, qk.deaths, qk.cancelled],
        lambda uid, f: [
            uid, f.token, -1 if f.retry_delay_ms is None else max(int(f.retry_delay_ms), 0),
            safe_name(f.error_code), safe_message(f.message), safe_traceback(f.traceback),
        ],
    )
    return [JobState(s) if s else None for s in await _each(core, batch, len(items))]


async def release(core: RedisCore, leases: Sequence[LeaseRef]) -> list[bool]:
    batch = _batch(
        core, "release", leases, lambda r: r.job_id,
        lambda qk: [qk.job_prefix, qk.running, qk.queued, qk.marker, qk.dead, qk.deaths],
        lambda uid, ref: [uid, ref.token],
    )
    return [bool(ok) for ok in await _each(core, batch, len(leases))]


async def progress(core: RedisCore, items: Sequence[ProgressItem]) -> list[bool]:
    rows = {id(p): check_progress(p.value, p.message) for p in items}
    batch = _batch(
        core, "progress", items, lambda p: p.job_id, lambda qk: [qk.job_prefix],
        lambda uid, p: [uid, p.token, rows[id(p)][0], safe_message(rows[id(p)][1])],
    )
    return [bool(ok) for ok in await _each(core, batch, len(items))]


async def promote(core: RedisCore, queue: str, limit: int) -> int:
    qk = core.qk(queue)
    keys = [qk.job_prefix, qk.scheduled, qk.queued, qk.seq, qk.marker, qk.dead, qk.deaths]
    return int(await core.run("promote", keys, [limit]))


async def reap(core: RedisCore, queue: str, limit: int) -> ReapResult:
    qk = core.qk(queue)
    keys = [qk.job_prefix, qk.running, qk.queued, qk.dead, qk.marker, qk.deaths,
            qk.cancelled]
    reply = ReapReply.decode(await core.run("reap", keys, [limit]))
    _set_aside(queue, reply.set_aside)
    return ReapResult(requeued=reply.requeued, dead=reply.dead, cancelled=reply.cancelled)


async def expire(core: RedisCore, queue: str, keep_ms: int, dlq_keep_ms: int,
                 limit: int) -> int:
    qk = core.qk(queue)
    keys = [qk.job_prefix, qk.succeeded, qk.cancelled, qk.dead, qk.idem_prefix, qk.listing,
            qk.deaths, qk.series_prefix]
    return int(await core.run("expire", keys,
                              [keep_ms, dlq_keep_ms, limit, SERIES_ROLLUP_HOURS]))


async def cancel(core: RedisCore, queue: str, uid: str, actor: str) -> str:
    """`ok`, `requested` (RUNNING: its worker is asked to stop it) or why not."""
    qk = core.qk(queue)
    keys = [qk.job(uid), qk.queued, qk.scheduled, qk.cancelled, qk.dead, qk.deaths]
    return str(await core.run("cancel", keys, [uid, safe_name(actor)]))


async def retry(core: RedisCore, queue: str, uid: str, actor: str) -> str:
    """`retried` or why not."""
    qk = core.qk(queue)
    keys = [qk.job_prefix, qk.dead, qk.cancelled, qk.queued, qk.seq, qk.marker, qk.deaths]
    (outcome,) = RetryReply.decode(
        await core.run("retry", keys, [safe_name(actor), uid])).outcomes
    return outcome
