"""The Redis broker's reads: jobs by id, listings (newest first across queues, a state index
in its own order), the queue registry, the invariant-1 audit, job logs and the worker
registry. Arguments arrive checked (brokers/shell.py); nothing here writes a job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import cast

from conveyor.brokers.base import AuditReport, Page, WorkerInfo
from conveyor.brokers.redis.core import RedisCore
from conveyor.brokers.redis.flow import RedisFlow
from conveyor.brokers.redis.records import LIST_FIELDS, job_from_hash, listed_hash
from conveyor.brokers.shell import not_found, parse_worker, worker_record
from conveyor.ids import split_job_id
from conveyor.jobs import Job, JobState

#: filtered listings look at this many candidates per queue and call at most
LIST_SCAN = 200
#: get_many reads at most this many records per pipeline
READ_CHUNK = 1000
_STATE_ORDER = tuple(JobState)


async def get(core: RedisCore, job_id: str) -> Job:
    queue, uid = split_job_id(job_id)
    with core.unavailable():
        h = cast(dict[str, str], await core.client.hgetall(core.qk(queue).job(uid)))
    if not h:
        raise not_found(job_id)
    return job_from_hash(queue, uid, h)


async def get_many(core: RedisCore, job_ids: Sequence[str]) -> list[Job | None]:
    """Many jobs by id in few round trips (pipelines of READ_CHUNK); None where unknown."""
    where = [split_job_id(j) for j in job_ids]
    hashes: list[dict[str, str]] = []
    with core.unavailable():
        for start in range(0, len(where), READ_CHUNK):
            pipe = core.client.pipeline(transaction=False)
            for queue, uid in where[start : start + READ_CHUNK]:
                pipe.hgetall(core.qk(queue).job(uid))
            hashes += await pipe.execute()
    # a bulk read, like a listing: a corrupt record reads as far as it can (corrupt_job)
    return [job_from_hash(q, u, h, strict=False) if h else None
            for (q, u), h in zip(where, hashes, strict=True)]


async def queues(core: RedisCore) -> list[str]:
    with core.unavailable():
        names = await core.client.smembers(core.keys.queues)
    return sorted(str(n) for n in names)


async def list_jobs(
    core: RedisCore, names: Sequence[str], state: JobState | None, type: str | None,
    limit: int, cursor: str | None,
) -> Page:
    """Newest first across the listing indexes of the queues `names`, merged by uid (uids
    sort by creation time). Scans at most LIST_SCAN candidates per call when filtering."""
    filtered = state is not None or type is not None
    scan = max(limit, LIST_SCAN) if filtered else limit
    top = f"({cursor}" if cursor else "+"
    with core.unavailable():
        pipe = core.client.pipeline(transaction=False)
        for q in names:
            pipe.zrevrangebylex(core.qk(q).listing, top, "-", start=0, num=scan)
        batches = [[str(u) for u in b] for b in await pipe.execute()] if names else []
    # Below the highest last-uid of a full batch, some queue may hold unseen jobs.
    floor = max((b[-1] for b in batches if len(b) == scan), default="")
    candidates = sorted(
        ((u, q) for q, b in zip(names, batches, strict=True) for u in b if u >= floor),
        reverse=True,
    )
    more = floor != ""
    if filtered:
        with core.unavailable():
            pipe = core.client.pipeline(transaction=False)
            for u, q in candidates:
                pipe.hmget(core.qk(q).job(u), "state", "type")
            meta = await pipe.execute() if candidates else []
        picked: list[tuple[str, str]] = []
        for (u, q), (st, ty) in zip(candidates, meta, strict=True):
            if len(picked) == limit:
                more = True
                break
            if st is not None and (state is None or st == state) and (
                type is None or ty == type
            ):
                picked.append((u, q))
        last = picked[-1][0] if len(picked) == limit else (candidates[-1][0] if
                                                            candidates else None)
    else:
        picked = candidates[:limit]
        more = more or len(candidates) > limit
        last = picked[-1][0] if picked else None
    jobs = await listed(core, [(q, u) for u, q in picked])
    return Page(items=jobs, next_cursor=last if more and last else None)


async def listed(core: RedisCore, picked: Sequence[tuple[str, str]]) -> list[Job]:
    """The (queue, uid) jobs as a listing shows them: every field but the result, whose
    preview stands in for it (stored at ack time; a record acked before previews existed
    has its result read instead). A record that does not parse is shown as corrupt,
    never the end of the listing. Jobs gone meanwhile are left out."""
    if not picked:
        return []
    with core.unavailable():
        pipe = core.client.pipeline(transaction=False)
        for q, u in picked:
            pipe.hmget(core.qk(q).job(u), LIST_FIELDS)
        hashes = [listed_hash(values) for values in await pipe.execute()]
        old = [i for i, h in enumerate(hashes) if h.get("state") == "succeeded"
               and "rprev" not in h]
        if old:
            pipe = core.client.pipeline(transaction=False)
            for i in old:
                pipe.hget(core.qk(picked[i][0]).job(picked[i][1]), "result")
            for i, result in zip(old, await pipe.execute(), strict=True):
                if result is not None:
                    hashes[i]["result"] = result
    return [job_from_hash(q, u, h, strict=False)
            for (q, u), h in zip(picked, hashes, strict=True) if h]


async def list_index(
    core: RedisCore, queue: str, state: JobState, limit: int, start: int,
) -> Page:
    """One state index in its own order: newest first for finished states (by finish
    time), next-to-run first otherwise. The cursor is an offset (`start`)."""
    index = core.qk(queue).index(state)
    newest_first = state in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)
    with core.unavailable():
        if newest_first:
            raw = await core.client.zrevrange(index, start, start + limit - 1)
        else:
            raw = await core.client.zrange(index, start, start + limit - 1)
        uids = [str(u) for u in raw]
    jobs = await listed(core, [(queue, u) for u in uids])
    nxt = str(start + limit) if len(uids) == limit else None
    return Page(items=jobs, next_cursor=nxt)


async def audit(core: RedisCore, flow: RedisFlow, queue: str) -> AuditReport:
    """Scan one queue for invariant 1 (one place). Reads only; meant for quiet moments."""
    qk = core.qk(queue)
    report = AuditReport(queue=queue)
    with core.unavailable():
        members: dict[str, list[JobState]] = defaultdict(list)
        for state in _STATE_ORDER:
            for uid in await core.client.zrange(qk.index(state), 0, -1):
                members[str(uid)].append(state)
        await flow.audit(queue, report, members)
        in_listing = {str(u) for u in await core.client.zrange(qk.listing, 0, -1)}
        records: dict[str, str | None] = {}
        async for key in core.scan(qk.job_prefix + "*"):
            records[key[len(qk.job_prefix):]] = None
        pipe = core.client.pipeline(transaction=False)
        for uid in records:
            pipe.hget(qk.job(uid), "state")
        for uid, rec_state in zip(records, await pipe.execute(), strict=True):
            records[uid] = rec_state
    report.jobs_seen = len(records)
    for uid, rec_state in records.items():
        found = members.get(uid, [])
        job_id = f"{queue}:{uid}"
        if not found:
            report.orphans.append(job_id)
        elif len(found) > 1:
            report.duplicates.append(job_id)
        elif found[0] != rec_state:
            report.mismatched.append(job_id)
    report.dangling = [f"{queue}:{u}" for u in members if u not in records]
    report.dangling += [f"{queue}:{u}" for u in in_listing if u not in records]
    report.unlisted = [f"{queue}:{u}" for u in records if u not in in_listing]
    return report


async def job_logs(core: RedisCore, job_id: str) -> list[str]:
    queue, uid = split_job_id(job_id)
    with core.unavailable():
        lines = await core.client.lrange(core.qk(queue).logs(uid), 0, -1)
    return [str(line) for line in lines]


async def register_worker(core: RedisCore, info: WorkerInfo, ttl_s: float) -> None:
    now = await core.now_ms()
    with core.unavailable():
        pipe = core.client.pipeline(transaction=False)
        pipe.set(core.keys.worker(info.id), worker_record(info, now), px=int(ttl_s * 1000))
        pipe.zadd(core.keys.workers, {info.id: now})
        pipe.zremrangebyscore(core.keys.workers, "-inf", now - int(ttl_s * 1000))
        await pipe.execute()


async def deregister_worker(core: RedisCore, worker_id: str) -> None:
    with core.unavailable():
        pipe = core.client.pipeline(transaction=False)
        pipe.delete(core.keys.worker(worker_id))
        pipe.zrem(core.keys.workers, worker_id)
        await pipe.execute()


async def workers(core: RedisCore) -> list[WorkerInfo]:
    with core.unavailable():
        ids = [str(i) for i in await core.client.zrange(core.keys.workers, 0, -1)]
        raw: list[str | None] = []
        for start in range(0, len(ids), READ_CHUNK):  # GETs, not MGET: one slot each
            pipe = core.client.pipeline(transaction=False)
            for i in ids[start : start + READ_CHUNK]:
                pipe.get(core.keys.worker(i))
            raw += await pipe.execute()
    # expired records (the worker stopped heart-beating) are gone; corrupt ones are logged
    return [w for w in (parse_worker(text) for text in raw if text) if w is not None]
