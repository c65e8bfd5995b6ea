"""Flow control on Redis: a queue's limits record, its keys, RateLimited holds, and the audit
of the counters. Enforcement itself is in lua/_flow.lua, run by fetch.lua (see
docs/decisions.md, "Flow control").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import cast

from conveyor.brokers.base import AuditReport, KeyInfo, LeaseRef, check_flow_counters
from conveyor.brokers.records import as_int
from conveyor.brokers.redis.core import RedisCore
from conveyor.flow import QueueLimits, Rate, stored_limits
from conveyor.ids import split_job_id
from conveyor.jobs import MAX_EPOCH_MS, JobState
from conveyor.queues import validate_queue_name

#: why a limited fetch held work back (the limits hash counts each as `held:<reason>`)
HELD_REASONS = ("concurrency", "rate", "hold", "key_concurrency", "key_rate", "key_hold")
#: limit_keys looks at this many keys with work at most (most backlog first among them)
KEYS_SCAN = 1000


def _rate_args(rate: Rate | None) -> list[str]:
    if rate is None:
        return ["", "", ""]
    return [str(rate.count), str(rate.per_ms), str(rate.burst)]


class RedisFlow:
    def __init__(self, core: RedisCore) -> None:
        self._b = core

    async def set(self, queue: str, limits: QueueLimits) -> QueueLimits:
        validate_queue_name(queue)
        if limits.empty:
            await self.delete(queue)
            return QueueLimits()
        qk = self._b.keys.queue(queue)
        args = [
            "set", limits.as_json(),
            "" if limits.concurrency is None else str(limits.concurrency),
            *_rate_args(limits.rate),
            "" if limits.key_concurrency is None else str(limits.key_concurrency),
            *_rate_args(limits.key_rate),
            json.dumps(limits.key_weights) if limits.key_weights else "",
        ]
        await self._b.run("limits", [qk.limits, qk.weights, qk.blocked, qk.marker, qk.ready],
                           args)
        return limits

    async def get(self, queue: str) -> QueueLimits | None:
        validate_queue_name(queue)
        with self._b.unavailable():
            text = await self._b.client.hget(self._b.keys.queue(queue).limits, "spec")
        return stored_limits(text if isinstance(text, str) else None)

    async def delete(self, queue: str) -> bool:
        validate_queue_name(queue)
        qk = self._b.keys.queue(queue)
        had = await self.get(queue) is not None
        await self._b.run("limits", [qk.limits, qk.weights, qk.blocked, qk.marker, qk.ready],
                           ["delete", "", *[""] * 8, ""])
        return had

    async def release_held(self, leases: Sequence[LeaseRef], hold_ms: int) -> list[bool]:
        hold = max(int(hold_ms), 0)
        by_queue: dict[str, list[tuple[int, str, str]]] = {}
        for pos, ref in enumerate(leases):
            queue, uid = split_job_id(ref.job_id)
            by_queue.setdefault(queue, []).append((pos, uid, ref.token))
        out = [False] * len(leases)
        for queue, items in by_queue.items():
            qk = self._b.keys.queue(queue)
            keys = [qk.job_prefix, qk.running, qk.queued, qk.marker, qk.dead, qk.deaths]
            res = await self._b.run(
                "release", keys, [json.dumps([[uid, tok, hold] for _, uid, tok in items])])
            for (pos, _, _), r in zip(items, res, strict=True):
                out[pos] = bool(int(r))
        return out

    async def keys(self, queue: str, limit: int) -> list[KeyInfo]:
        """Keys with backlog (ready or blocked), most backlog first, among the first
        KEYS_SCAN of each index."""
        validate_queue_name(queue)
        qk = self._b.keys.queue(queue)
        with self._b.unavailable():
            ready = [str(k) for k in await self._b.client.zrange(qk.ready, 0, KEYS_SCAN - 1)]
            blocked = cast(list[tuple[str, float]], await self._b.client.zrange(
                qk.blocked, 0, KEYS_SCAN - 1, withscores=True))
            names = list(dict.fromkeys([k for k in ready if k] + [str(k) for k, _ in blocked
                                                                 if k]))
            pipe = self._b.client.pipeline(transaction=False)
            for key in names:
                pipe.zcard(qk.lane(key))
                pipe.hmget(qk.limit_key(key), "run", "hold")
                pipe.hget(qk.key_runs, key)
            replies = await pipe.execute() if names else []
        until: dict[str, float] = {str(k): float(s) for k, s in blocked}
        out: list[KeyInfo] = []
        for i, key in enumerate(names):
            backlog, (old_run, hold) = int(replies[3 * i]), replies[3 * i + 1]
            # permits out: krun's, plus those leased before krun (counted in lk:)
            run = (max(as_int(replies[3 * i + 2], -10**9, 10**9) or 0, 0)
                   + max(as_int(old_run, -10**9, 10**9) or 0, 0))
            if not backlog:
                continue  # its lane emptied since a fetch ranked it (no peek at a lane's head)
            held = as_int(hold, 0, MAX_EPOCH_MS)
            score = until.get(key)
            if score is not None and score != float("inf"):
                held = max(held or 0, int(score))
            out.append(KeyInfo(key, backlog, run,
                               held if key in until else None, key in until))
        out.sort(key=lambda k: (-k.backlog, k.key))
        return out[:limit]

    async def in_lanes(self, queues: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """Jobs waiting in key lanes per queue, and whether the queue has limits (one
        pipeline)."""
        if not queues:
            return {}
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=False)
            for q in queues:
                pipe.hmget(self._b.keys.queue(q).limits, "n", "spec")
            raw = await pipe.execute()
        return {q: (max(as_int(n, -10**12, 10**12) or 0, 0), spec is not None)
                for q, (n, spec) in zip(queues, raw, strict=True)}

    async def limited(self, queues: Sequence[str]) -> dict[str, int]:
        """Jobs waiting in key lanes per queue with limits; none for a queue without (its
        lanes still drain in fair order, but no limit holds them; SQLite counts the QUEUED
        jobs of a queue with limits)."""
        return {q: n if limited else 0 for q, (n, limited) in (await self.in_lanes(queues)).items()}

    async def held(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """How often each limit held work back, per queue (the `held:<reason>` counters)."""
        if not queues:
            return {}
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=False)
            for q in queues:
                pipe.hmget(self._b.keys.queue(q).limits, *(f"held:{r}" for r in HELD_REASONS))
            raw = await pipe.execute()
        return {q: {r: n for r, v in zip(HELD_REASONS, row, strict=True)
                    if (n := as_int(v, 0, 10**15) or 0)}
                for q, row in zip(queues, raw, strict=True)}

    async def audit(self, queue: str, report: AuditReport,
                    members: dict[str, list[JobState]]) -> None:
        """Lane members count as QUEUED (added to `members`); counters checked against the
        RUNNING jobs holding a permit."""
        qk = self._b.keys.queue(queue)
        client = self._b.client
        with self._b.unavailable():
            lanes = [str(k) async for k in client.scan_iter(match=qk.lane_prefix + "*",
                                                             count=1000)]
            in_lanes = 0
            for lane in lanes:
                for uid in await client.zrange(lane, 0, -1):
                    members.setdefault(str(uid), []).append(JobState.QUEUED)
                    in_lanes += 1
            lim = await client.hmget(qk.limits, "run", "n")
            running = [str(u) for u in await client.zrange(qk.running, 0, -1)]
            pipe = client.pipeline(transaction=False)
            for uid in running:
                pipe.hmget(qk.job(uid), "permit", "limit_key")
            flags = await pipe.execute() if running else []
            lks = [str(k) async for k in client.scan_iter(match=qk.limit_key_prefix + "*",
                                                           count=1000)]
            pipe = client.pipeline(transaction=False)
            for k in lks:
                pipe.hget(k, "run")
            runs = await pipe.execute() if lks else []
            new_runs = await client.hgetall(qk.key_runs)
        # permits 'p' / 'q' are counted in krun, '1' / 'c' (leased before krun) in lk:<key>
        permits: Counter[str] = Counter(
            (key or "") for permit, key in flags if permit in ("1", "c", "p", "q"))
        key_runs: Counter[str] = Counter()
        for k, r in zip(lks, runs, strict=True):
            key_runs[k[len(qk.limit_key_prefix):]] += as_int(r, -10**9, 10**9) or 0
        for name, r in new_runs.items():
            key_runs[str(name)] += as_int(r, -10**9, 10**9) or 0
        check_flow_counters(report, as_int(lim[0], -10**9, 10**9) or 0, dict(key_runs),
                            as_int(lim[1], -10**12, 10**12) or 0, dict(permits), in_lanes)
