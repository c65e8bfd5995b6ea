"""The Redis broker's DLQ calls: scan, redrive in place or into another queue, purge, and the
death events behind the `on_dead` hooks. Every call is one script on one queue (one slot).

A redrive into another queue spans two slots, so it is two scripts: `adopt` makes the copy
(its idempotency key is the old id plus its redrive count), then `purge` removes the old job
only while that count is unchanged. A crash between the two leaves a retry that finds the
copy already made: it cannot duplicate the job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor import joblogs
from conveyor.brokers.base import DeadScan, DeadSelector, DeathEvent, parse_dead_cursor
from conveyor.brokers.records import MOVE_CHECKS, as_int, record_problem
from conveyor.brokers.redis.core import RedisCore
from conveyor.brokers.redis.replies import Claimed, DeadScanReply
from conveyor.brokers.text import safe_name
from conveyor.ids import UID_RE, new_uid, split_job_id

#: Fields a move copies from the dead job, in the order of the `adopt` script's rows.
_COPIED = ("type", "payload", "prio", "max_att", "timeout", "history", "redrives", "limit_key")


def selector_json(sel: DeadSelector | None) -> str:
    """The selector as the scripts read it (see `dead_match` in _lib.lua): only set fields,
    since cjson turns a JSON null into a value Lua treats as true."""
    out: dict[str, Any] = {}
    if sel is not None:
        if sel.type is not None:
            out["type"] = sel.type
        if sel.error_code is not None:
            out["code"] = sel.error_code
        if sel.died_after_ms is not None:
            out["after"] = sel.died_after_ms
        if sel.died_before_ms is not None:
            out["before"] = sel.died_before_ms
        if sel.skip_error_codes:
            out["skip"] = list(sel.skip_error_codes)
        if sel.max_redrives is not None:
            out["maxr"] = sel.max_redrives
    return json.dumps(out)


def _flag(value: bool) -> str:
    return "1" if value else "0"


@dataclass(frozen=True, slots=True)
class MovePlan:
    """One dead job about to be copied into another queue."""

    old_uid: str
    redrives: int
    #: the `adopt` script's row for the copy (its last item: the old job's log lines)
    row: list[Any]


class RedisDlq:
    """The DLQ calls on one queue. Arguments arrive checked (brokers/shell.py): job ids as
    the uids of the queue's jobs, None for a selection by `selector` alone."""

    def __init__(self, core: RedisCore) -> None:
        self._b = core

    async def scan(
        self, queue: str, selector: DeadSelector | None, limit: int, cursor: str | None,
        scan: int,
    ) -> DeadScan:
        ms, uid = ("", "") if cursor is None else parse_dead_cursor(cursor)
        qk = self._b.keys.queue(queue)
        reply = DeadScanReply.decode(await self._b.run(
            "scan_dead", [qk.job_prefix, qk.dead],
            [selector_json(selector), limit, max(scan, limit), str(ms), uid],
        ))
        return DeadScan(ids=[f"{queue}:{u}" for u in reply.uids], cursor=reply.cursor,
                        done=reply.done)

    async def redrive(
        self, queue: str, uids: Sequence[str] | None, limit: int, actor: str,
        selector: DeadSelector | None, dry_run: bool,
    ) -> list[str]:
        picked: list[Any] = ["*", limit] if uids is None else list(uids)
        if not picked:
            return []
        qk = self._b.keys.queue(queue)
        keys = [qk.job_prefix, qk.dead, qk.queued, qk.seq, qk.marker]
        args = [safe_name(actor), selector_json(selector), _flag(dry_run), *picked]
        return [f"{queue}:{u}" for u in await self._b.run("redrive", keys, args)]

    async def purge(
        self, queue: str, uids: Sequence[str] | None, limit: int,
        selector: DeadSelector | None, dry_run: bool,
    ) -> list[str]:
        picked: list[Any] = ["*", limit] if uids is None else list(uids)
        return await self._purge(queue, picked, selector, dry_run)

    async def _purge(
        self, queue: str, picked: list[Any], selector: DeadSelector | None, dry_run: bool
    ) -> list[str]:
        if not picked:
            return []
        qk = self._b.keys.queue(queue)
        keys = [qk.job_prefix, qk.dead, qk.idem_prefix, qk.listing, qk.deaths]
        args = [selector_json(selector), _flag(dry_run), *picked]
        return [f"{queue}:{u}" for u in await self._b.run("purge", keys, args)]

    # --- redrive into another queue: plan, copy (step 1), remove (step 2) --------------------
    async def move(
        self, queue: str, uids: Sequence[str], target: str, actor: str,
        selector: DeadSelector | None,
    ) -> list[tuple[str, str]]:
        plans = await self.plan_move(queue, uids, target, selector)
        if not plans:
            return []
        copies = await self.copy(target, actor, plans)
        removed = set(await self.remove_moved(queue, plans))
        return [
            (f"{queue}:{p.old_uid}", f"{target}:{new}")
            for p, new in zip(plans, copies, strict=True)
            if f"{queue}:{p.old_uid}" in removed
        ]

    async def plan_move(
        self, queue: str, uids: Sequence[str], target: str, selector: DeadSelector | None
    ) -> list[MovePlan]:
        eligible = await self.redrive(queue, uids, 0, "", selector, dry_run=True)
        if not eligible:
            return []
        found = [split_job_id(j)[1] for j in eligible]
        qk = self._b.keys.queue(queue)
        with self._b.unavailable():
            pipe = self._b.client.pipeline(transaction=False)
            for uid in found:
                pipe.hmget(qk.job(uid), *_COPIED)
                pipe.lrange(qk.logs(uid), -joblogs.MAX_LINES, -1)  # kept within the bounds
            replies: list[Any] = await pipe.execute()
        records: list[list[str | None]] = replies[0::2]
        logs: list[list[str]] = replies[1::2]
        plans = []
        for uid, (jtype, payload, prio, max_att, timeout, history, redrives, limit_key), lines in (
            zip(found, records, logs, strict=True)
        ):
            if jtype is None or payload is None or max_att is None:
                continue  # deleted meanwhile
            count = as_int(redrives or "0", 0, 10**9)
            if count is None or record_problem({
                "state": "dead", "priority": prio, "max_attempts": max_att, "timeout": timeout,
            }, "dead", MOVE_CHECKS):
                continue  # damaged since the dry run looked: left dead, as redrive leaves it
            old_id = f"{queue}:{uid}"
            row = [
                new_uid(), jtype, payload, prio or "0", max_att, timeout or "",
                f"redrive:{old_id}:{count}", history or "", str(count + 1), old_id,
                limit_key or "", [str(line) for line in lines],
            ]
            plans.append(MovePlan(uid, count, row))
        return plans

    async def copy(self, target: str, actor: str, plans: Sequence[MovePlan]) -> list[str]:
        """Step 1: the copies in the target queue; returns their uids (new or found)."""
        qk = self._b.keys.queue(target)
        keys = [qk.job_prefix, qk.idem_prefix, qk.queued, qk.seq, qk.marker, qk.listing,
                qk.logs_prefix]
        rows = json.dumps([p.row for p in plans])
        uids = [str(u) for u in await self._b.run("adopt", keys, [safe_name(actor), rows])]
        await self._b.remember_queues([target])  # after the copies (see remember_queues)
        return uids

    async def remove_moved(self, queue: str, plans: Sequence[MovePlan]) -> list[str]:
        """Step 2: delete the old jobs, each only while its redrive count is the planned one."""
        return await self._purge(queue, [f"{p.old_uid}={p.redrives}" for p in plans], None, False)

    # --- death events -----------------------------------------------------------------------
    async def claim_deaths(self, queue: str, limit: int, lease_ms: int) -> list[DeathEvent]:
        qk = self._b.keys.queue(queue)
        reply = await self._b.run("claim_deaths", [qk.job_prefix, qk.deaths], [limit, lease_ms])
        out = []
        for claimed in Claimed.decode_all(reply):
            uid, _, n = claimed.member.rpartition(":")
            death = as_int(n, 0, 10**9)
            if death is not None and UID_RE.fullmatch(uid):  # else not an event we wrote
                out.append(DeathEvent(job_id=f"{queue}:{uid}", type=claimed.type, redrives=death))
        return out

    async def ack_deaths(self, queue: str, members: Sequence[str]) -> int:
        """Drop the death events `<uid>:<death count>` whose hooks have run."""
        with self._b.unavailable():
            return int(await self._b.client.zrem(self._b.keys.queue(queue).deaths, *members))
