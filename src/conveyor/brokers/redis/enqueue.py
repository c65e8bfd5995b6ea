"""The Redis enqueue: the plan (script calls that store some jobs, and how to read their
replies back), shared by the async broker and the synchronous fast path (sync.py), and the
async send of that plan, with the per-slot retry that names what a Cluster stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json

from conveyor.brokers.redis import batches
from conveyor.brokers.redis.core import RedisCore, script_errors
from conveyor.brokers.redis.keys import QueueKeys
from conveyor.brokers.redis.replies import EnqueuePart
from conveyor.errors import BrokerUnavailable, ConveyorError, PartialEnqueue
from conveyor.jobs import EnqueueResult, JobSpec, JobState, check_spec

ENQUEUE_CHUNK = 1000


@dataclass(slots=True)
class EnqueuePlan:
    """Script calls that store some jobs, and how to read their replies back. Shared by the
    async broker and the synchronous fast path (`SyncEnqueuer`)."""

    specs: list[JobSpec]
    queues: list[str]
    calls: list[tuple[str, list[str], list[Any]]] = field(default_factory=list)
    order: list[tuple[str, list[int]]] = field(default_factory=list)

    def results(self, replies: Sequence[Any]) -> list[EnqueueResult]:
        out: list[EnqueueResult | None] = [None] * len(self.specs)
        for (queue, positions), reply in zip(self.order, replies, strict=True):
            part = EnqueuePart.decode(reply)
            for pos, row in zip(positions, part.rows, strict=True):
                spec = self.specs[pos]
                if isinstance(row, int):  # created; due at `row`
                    state = JobState.SCHEDULED if row > part.now_ms else JobState.QUEUED
                    out[pos] = EnqueueResult(spec.id, True, spec.fingerprint, state,
                                             part.now_ms, row)
                else:  # the live job holding the idempotency key, or this job sent again
                    job_id = f"{queue}:{row.uid}"
                    out[pos] = EnqueueResult(job_id, job_id == spec.id,
                                             row.fingerprint or spec.fingerprint, row.state,
                                             row.created_ms, row.run_at_ms)
        return [r for r in out if r is not None]

    def fresh_queues(self, replies: Sequence[Any]) -> list[str]:
        """The queues to add to the registry after these replies (None or an exception:
        that call failed): those whose counter a call created (see enqueue.lua), so a queue
        pays the registry's round trip on its first enqueue, not on every one."""
        return list(dict.fromkeys(
            queue for (queue, _), reply in zip(self.order, replies, strict=True)
            if reply is not None and not isinstance(reply, Exception)
            and EnqueuePart.is_fresh(reply)))

    def partial(self, stored: Sequence[int], replies: Sequence[Any],
                failed: ConveyorError) -> ConveyorError:
        """What a batch whose calls `stored` went through while others failed answers:
        `failed` itself when nothing was stored, else a PartialEnqueue naming both sides."""
        done = [self.specs[p].id for i in stored for p in self.order[i][1]]
        if not done:
            return failed
        left = [self.specs[p].id for i, r in enumerate(replies) if r is None
                for p in self.order[i][1]]
        return PartialEnqueue(
            f"{len(done)} of {len(self.specs)} jobs were stored; a Redis Cluster node failed"
            f" for the other {len(left)} (unconfirmed: each may or may not be stored):"
            f" {failed.message}. Send the batch again: each job"
            " keeps its id, so the stored ones come back as they are",
            details={"stored": done, "unconfirmed": left},
        )


def enqueue_keys(qk: QueueKeys) -> list[str]:
    return [qk.job_prefix, qk.idem_prefix, qk.queued, qk.scheduled, qk.seq, qk.marker,
            qk.listing]


def _row(uid: str, s: JobSpec) -> list[Any]:
    """One job as enqueue.lua reads it (ARGV[1]'s rows)."""
    return [
        uid, s.type, s.payload_json, str(s.priority), str(s.max_attempts),
        "" if s.timeout_ms is None else str(s.timeout_ms),
        -1 if s.delay_ms is None else s.delay_ms,
        -1 if s.run_at_ms is None else s.run_at_ms, s.idempotency_key or "", s.fingerprint,
        s.trace,
        s.limit_key or "",
    ]


def enqueue_plan(core: RedisCore, specs: Sequence[JobSpec]) -> EnqueuePlan:
    """The script calls that store `specs`: one per queue and bounded chunk of jobs (at
    most 1,000 and `max_call_bytes`, see batches.py). A lone job is one call whatever its
    size (batches.build would make the same one), built without the grouping."""
    for spec in specs:
        check_spec(spec)  # all or nothing: no call is made unless every spec is valid
    if len(specs) == 1:
        (spec,) = specs
        uid = spec.id[len(spec.queue) + 1:]  # check_spec: the id is "<queue>:<uid>"
        call = ("enqueue", enqueue_keys(core.qk(spec.queue)),
                [batches.json_array([to_json(_row(uid, spec))])])
        return EnqueuePlan(specs=[spec], queues=[spec.queue], calls=[call],
                           order=[(spec.queue, [0])])
    batch = batches.build(
        "enqueue", specs, lambda s: s.id, lambda q: enqueue_keys(core.qk(q)), _row,
        max_bytes=core.max_call_bytes, max_items=ENQUEUE_CHUNK,
    )
    return EnqueuePlan(specs=list(specs), queues=list(dict.fromkeys(q for q, _ in batch.parts)),
                       calls=batch.calls, order=batch.parts)


async def enqueue(core: RedisCore, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
    """The registry add goes after the scripts, and only for queues a call found new."""
    plan = enqueue_plan(core, specs)
    try:
        if len(plan.calls) == 1:  # a lone call: an error is raised, nothing was stored
            name, keys, args = plan.calls[0]
            replies = [await core.run(name, keys, args)]
        else:
            replies = await core.run_many(plan.calls, partial=True)
        await core.remember_queues(plan.fresh_queues(replies))
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:  # e.g. a queue that refused (corrupt_queue): the others' jobs are stored
            with script_errors(), core.unavailable():
                raise failed[0]
    except BrokerUnavailable:
        if not core.cluster or len(plan.calls) < 2:
            raise
        return await _enqueue_apart(core, plan)
    return plan.results(replies)


async def _enqueue_apart(core: RedisCore, plan: EnqueuePlan) -> list[EnqueueResult]:
    """Cluster, a batch over several slots that failed somewhere: each call again on its
    own (a repeat finds its jobs already stored), so the caller learns exactly which
    jobs are stored. Some stored, some not: `PartialEnqueue` names both."""
    replies: list[Any] = []
    failed: BrokerUnavailable | None = None
    for name, keys, args in plan.calls:
        try:
            replies.append(await core.run(name, keys, args))
        except BrokerUnavailable as exc:
            failed = exc
            replies.append(None)
    stored = [i for i, r in enumerate(replies) if r is not None]
    await core.remember_queues(plan.fresh_queues(replies))
    if failed is None:
        return plan.results(replies)
    raise plan.partial(stored, replies, failed)
