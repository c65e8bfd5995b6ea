"""RedisBroker: the Broker protocol on Redis, every transition one Lua script (see lua/).

This module is the front: each method checks its arguments with the shared shell
(brokers/shell.py, the same checks as the SQLite broker), refuses new work while Redis may
evict keys, and calls the storage code beside it: the core (clients, keys, script runner:
core.py), transitions.py, enqueue.py, reads.py, dlq.py, queues.py, flow.py, events.py.

Batch calls group their items by queue and send one script call per queue in one pipeline,
so a worker acks or heartbeats any number of jobs in one round trip (on Cluster: one round
trip per node, every call on one queue's slot; see cluster.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from conveyor.brokers import shell
from conveyor.brokers.base import (
    AckItem,
    AuditReport,
    DeadScan,
    DeadSelector,
    DeathEvent,
    EventPage,
    FailItem,
    FetchBatch,
    HeartbeatReply,
    KeyInfo,
    LeaseRef,
    LogAppend,
    Page,
    ProgressItem,
    ReapResult,
    SeriesPoint,
    SyncEnqueuer,
    WorkerInfo,
    check_ticket,
)
from conveyor.brokers.redis import batches, reads
from conveyor.brokers.redis import enqueue as enq
from conveyor.brokers.redis import transitions as tx
from conveyor.brokers.redis.cluster import Client
from conveyor.brokers.redis.core import (
    MAX_WAIT_S,
    POLICY_CHECK_S,
    TIMEOUT_S,
    RedisCore,
    make_clients,
)
from conveyor.brokers.redis.dlq import RedisDlq
from conveyor.brokers.redis.enqueue import EnqueuePlan
from conveyor.brokers.redis.events import RedisEvents
from conveyor.brokers.redis.flow import RedisFlow
from conveyor.brokers.redis.queues import RedisQueues
from conveyor.brokers.redis.scripts import DEFAULT_EVENTS_MAXLEN
from conveyor.brokers.redis.server import PolicyWatch, check_role, cluster_ok, warn_without_aof
from conveyor.errors import BrokerMisconfigured, BrokerUnavailable
from conveyor.flow import QueueLimits
from conveyor.ids import split_job_id
from conveyor.jobs import EnqueueResult, Job, JobSpec, JobState

#: Cluster, a worker on several queues: how often their wake markers are looked at (one
#: pipelined LPOP per node; a BLPOP over several queues' markers would be cross-slot)
CLUSTER_POLL_S = 0.05


if TYPE_CHECKING:
    from conveyor.brokers.redis.schedules import RedisScheduleStore
    from conveyor.brokers.redis.webhooks import RedisWebhookStore

class RedisBroker(RedisCore):
    def __init__(
        self,
        client: Client,
        *,
        key_prefix: str = "cv",
        retention_s: float = 24 * 3600.0,
        dlq_retention_s: float = 30 * 24 * 3600.0,
        queue_retention_s: dict[str, float] | None = None,
        check_server: bool = True,
        blocking_client: Client | None = None,
        policy: PolicyWatch | None = None,
        timeout_s: float = TIMEOUT_S,
        max_call_bytes: int = batches.MAX_CALL_BYTES,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        events_maxlen: int = DEFAULT_EVENTS_MAXLEN,
    ) -> None:
        super().__init__(
            client, key_prefix=key_prefix, check_server=check_server,
            blocking_client=blocking_client, policy=policy, timeout_s=timeout_s,
            max_call_bytes=max_call_bytes, wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms, events_maxlen=events_maxlen,
        )
        self.retention_s = retention_s
        self.dlq_retention_s = dlq_retention_s
        self.queue_retention_s = dict(queue_retention_s or {})
        self._events = RedisEvents(self)
        self._dlq = RedisDlq(self)
        self._queues = RedisQueues(self)
        self._flow = RedisFlow(self)

    @classmethod
    def from_url(
        cls, url: str, *, key_prefix: str = "cv", timeout_s: float = TIMEOUT_S,
        policy_check_s: float = POLICY_CHECK_S, **kw: Any,
    ) -> RedisBroker:
        """Two pools: one for commands, one for blocking waits (their reads last longer).
        Every new connection of either makes the policy due for a look."""
        watch = PolicyWatch(policy_check_s)
        # a reply to a write that WAITs for replicas may take the WAIT's timeout longer
        wait_s = kw.get("wait_timeout_ms", 1000) / 1000 if kw.get("wait_replicas") else 0.0
        client, blocking = make_clients(url, timeout_s=timeout_s, wait_s=wait_s, watch=watch)
        broker = cls(client, key_prefix=key_prefix, blocking_client=blocking, policy=watch,
                     timeout_s=timeout_s, **kw)
        broker.url = url
        return broker

    # --- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        with self.unavailable():
            await self.client.ping()
            if not isinstance(self.client, RedisCluster):
                await check_role(self.client)
            if self.check_server:
                await self._check_server()
            await self.scripts.load(self.client)

    async def _check_server(self) -> None:
        assert self.policy is not None
        self.topology()
        self.policy.due()
        error = self.policy.record_all(await self.memory_infos())
        if error is not None:
            raise error
        await warn_without_aof(self.client)

    async def check_ready(self) -> None:
        with self.unavailable():
            await self.client.ping()
            if isinstance(self.client, RedisCluster):
                await cluster_ok(self.client)
        await self.writable(max_age_s=1.0)

    async def close(self) -> None:
        await self.client.aclose()
        if self.blocking_client is not self.client:
            await self.blocking_client.aclose()

    async def ping(self) -> bool:
        try:
            with self.unavailable():
                return bool(await self.client.ping())
        except BrokerUnavailable:
            return False

    # --- producer -------------------------------------------------------------------------
    def enqueue_plan(self, specs: Sequence[JobSpec]) -> EnqueuePlan:
        return enq.enqueue_plan(self, specs)

    async def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        await self.writable()
        return await enq.enqueue(self, specs)

    def sync_enqueuer(self) -> SyncEnqueuer | None:
        """The blocking enqueue path (`redis/sync.py`) over a connection of its own; only a
        broker made by `from_url` has one (it needs the URL to connect to)."""
        from conveyor.brokers.redis.sync import SyncEnqueuer as RedisSyncEnqueuer

        return None if self.url is None else RedisSyncEnqueuer(self, self.url)

    def schedule_store(self) -> RedisScheduleStore:
        """Where this broker keeps schedules (`schedules.store.schedule_store`)."""
        from conveyor.brokers.redis.schedules import RedisScheduleStore

        return RedisScheduleStore(self)

    def webhook_store(self) -> RedisWebhookStore:
        """Where this broker keeps webhook subscriptions (`webhooks.store.webhook_store`)."""
        from conveyor.brokers.redis.webhooks import RedisWebhookStore

        return RedisWebhookStore(self.client, self.keys, self.scripts)

    # --- worker ---------------------------------------------------------------------------
    async def fetch(self, queue: str, count: int, worker_id: str, lease_ms: int) -> FetchBatch:
        shell.queue_name(queue)
        await self.writable()
        connects = self.policy.connects if self.policy is not None else 0
        return await self._looked_at(connects, await tx.fetch(self, queue, count, worker_id,
                                                              lease_ms))

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        names = shell.queue_names(queues)
        timeout = min(max(timeout_s, 0.001), MAX_WAIT_S)
        if self.cluster and len(set(names)) > 1:
            return await self._poll_markers(list(dict.fromkeys(names)), timeout)
        with self.unavailable():
            got = await self.blocking_client.blpop([self.qk(q).marker for q in names],
                                                   timeout=timeout)
        return got is not None

    async def wait_and_fetch(self, queue: str, count: int, worker_id: str, lease_ms: int,
                             timeout_s: float, ticket: str) -> FetchBatch:
        """`LeasingWait`: block on the queue's marker and lease in the same round trip."""
        shell.queue_name(queue)
        check_ticket(ticket)
        await self.writable()
        timeout = min(max(timeout_s, 0.001), MAX_WAIT_S)
        connects = self.policy.connects if self.policy is not None else 0
        return await self._looked_at(connects, await tx.wait_and_fetch(
            self, queue, count, worker_id, lease_ms, timeout, ticket))

    async def _looked_at(self, connects: int, batch: FetchBatch) -> FetchBatch:
        """The eviction gate of a fetch that leased on a connection made inside the call
        (e.g. Redis restarted after `writable` looked): that server's policy was not looked
        at yet, so look now, and hand the leases back if it evicts."""
        if self.policy is None or self.policy.connects == connects or not batch.deliveries:
            return batch
        try:
            await self.writable()
        except BrokerMisconfigured:
            await tx.release(self, [LeaseRef(d.job_id, d.token) for d in batch.deliveries])
            raise
        except BrokerUnavailable:  # the look failed: the next call looks again; these run
            pass
        return batch

    async def revoke_wait(self, queue: str, ticket: str) -> bool:
        """`LeasingWait`: True when the fetch of that wait had not run (it leases nothing)."""
        shell.queue_name(queue)
        check_ticket(ticket)
        return await tx.revoke_wait(self, queue, ticket) == "armed"

    async def _poll_markers(self, queues: Sequence[str], wait_s: float) -> bool:
        """Cluster: the markers of several queues are in several slots, so no one BLPOP can
        wait on them; take them with one pipelined LPOP per node every CLUSTER_POLL_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            with self.unavailable():
                pipe = self.client.pipeline(transaction=False)
                for q in queues:
                    pipe.lpop(self.qk(q).marker)
                if any(v is not None for v in await pipe.execute()):
                    return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(CLUSTER_POLL_S, remaining))

    async def heartbeat(self, leases: Sequence[LeaseRef], lease_ms: int) -> HeartbeatReply:
        return await tx.heartbeat(self, leases, lease_ms)

    async def cancel_running(self, leases: Sequence[LeaseRef]) -> list[bool]:
        return await tx.cancel_running(self, leases)

    async def append_logs(self, items: Sequence[LogAppend]) -> list[bool]:
        return await tx.append_logs(self, items) if items else []

    async def job_logs(self, job_id: str) -> list[str]:
        return await reads.job_logs(self, job_id)

    async def ack(self, items: Sequence[AckItem]) -> list[bool]:
        return await tx.ack(self, items)

    async def fail(self, items: Sequence[FailItem]) -> list[JobState | None]:
        return await tx.fail(self, items)

    async def release(self, leases: Sequence[LeaseRef]) -> list[bool]:
        return await tx.release(self, leases)

    async def progress(self, items: Sequence[ProgressItem]) -> list[bool]:
        return await tx.progress(self, items)

    async def release_held(self, leases: Sequence[LeaseRef], hold_ms: int) -> list[bool]:
        await self.writable()
        return await self._flow.release_held(leases, hold_ms)

    async def promote_due(self, queue: str, limit: int = 1000) -> int:
        return await tx.promote(self, shell.queue_name(queue), limit)

    async def reap_expired(self, queue: str, limit: int = 1000) -> ReapResult:
        return await tx.reap(self, shell.queue_name(queue), limit)

    async def expire_finished(self, queue: str, limit: int = 1000) -> int:
        keep = shell.retention_ms(shell.queue_name(queue), self.retention_s,
                                  self.queue_retention_s)
        return await tx.expire(self, queue, keep, int(self.dlq_retention_s * 1000), limit)

    # --- operator -------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        return await reads.get(self, job_id)

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        return await reads.get_many(self, job_ids)

    async def cancel(self, job_id: str, actor: str = "manual") -> Job:
        queue, uid = split_job_id(job_id)
        await self.writable()
        shell.cancel_outcome(job_id, await tx.cancel(self, queue, uid, actor))
        return await self.get(job_id)

    async def retry(self, job_id: str, actor: str = "manual") -> Job:
        queue, uid = split_job_id(job_id)
        await self.writable()
        shell.retry_outcome(job_id, await tx.retry(self, queue, uid, actor))
        return await self.get(job_id)

    async def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        shell.check_page(limit)
        shell.uid_cursor(cursor)
        names = [shell.queue_name(queue)] if queue is not None else await self.queues()
        return await reads.list_jobs(self, names, state, type, limit, cursor)

    async def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page:
        shell.queue_name(queue)
        shell.check_page(limit)
        start = shell.offset_cursor(cursor)
        return await reads.list_index(self, queue, JobState.DEAD, limit, start)

    async def dlq_scan(
        self, queue: str, selector: DeadSelector | None = None, *, limit: int = 100,
        cursor: str | None = None, scan: int = 1000,
    ) -> DeadScan:
        shell.check_dead_scan(queue, limit, scan)
        return await self._dlq.scan(queue, selector, limit, cursor, scan)

    async def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        actor: str = "dlq.redrive", *, selector: DeadSelector | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        uids = shell.uids_in(shell.queue_name(queue), job_ids)
        if uids == []:
            return []
        await self.writable()
        return await self._dlq.redrive(queue, uids, limit, actor, selector, dry_run)

    async def dlq_move(
        self, queue: str, job_ids: Sequence[str], target_queue: str, actor: str,
        *, selector: DeadSelector | None = None,
    ) -> list[tuple[str, str]]:
        shell.check_move(queue, target_queue)
        uids = shell.uids_in(queue, job_ids) or []
        if not uids:
            return []
        await self.writable()
        return await self._dlq.move(queue, uids, target_queue, actor, selector)

    async def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        *, selector: DeadSelector | None = None, dry_run: bool = False,
    ) -> list[str]:
        uids = shell.uids_in(shell.queue_name(queue), job_ids)
        if uids == []:
            return []
        await self.writable()
        return await self._dlq.purge(queue, uids, limit, selector, dry_run)

    async def claim_deaths(self, queue: str, limit: int, lease_ms: int) -> list[DeathEvent]:
        return await self._dlq.claim_deaths(shell.queue_name(queue), limit, lease_ms)

    async def ack_deaths(self, queue: str, events: Sequence[DeathEvent]) -> int:
        shell.queue_name(queue)
        members = [f"{shell.uid_in(queue, e.job_id)}:{e.redrives}" for e in events]
        return await self._dlq.ack_deaths(queue, members) if members else 0

    async def pause(self, queue: str) -> None:
        shell.queue_name(queue)
        await self.writable()
        await self._queues.pause(queue)

    async def resume(self, queue: str) -> None:
        shell.queue_name(queue)
        await self.writable()
        await self._queues.resume(queue)

    async def is_paused(self, queue: str) -> bool:
        with self.unavailable():
            return bool(await self.client.exists(self.qk(queue).paused))

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return await self._queues.paused(queues)

    async def forget_queue(self, queue: str) -> None:
        shell.queue_name(queue)
        await self.writable()
        await self._queues.forget(queue)

    async def queues(self) -> list[str]:
        return await reads.queues(self)

    async def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Counts per state; QUEUED includes the jobs in key lanes (flow control)."""
        names = list(queues) if queues is not None else await self.queues()
        out = await self._queues.stats(names)
        for q, (n, _) in (await self._flow.in_lanes(names)).items():
            out[q]["queued"] += n
        return out

    async def limited_counts(self, queues: Sequence[str]) -> dict[str, int]:
        return await self._flow.limited(queues)

    async def ready_ages(self, queues: Sequence[str]) -> dict[str, int]:
        return await self._queues.ready_ages(list(queues))

    async def series(
        self, queue: str, minutes: int, type: str | None = None, step_s: int | None = None
    ) -> list[SeriesPoint]:
        return await self._queues.series(queue, minutes, type, step_s)

    async def audit(self, queue: str) -> AuditReport:
        return await reads.audit(self, self._flow, queue)

    # --- flow control ---------------------------------------------------------------------
    async def set_limits(self, queue: str, limits: QueueLimits) -> QueueLimits:
        shell.queue_name(queue)
        await self.writable()
        return await self._flow.set(queue, limits)

    async def get_limits(self, queue: str) -> QueueLimits | None:
        return await self._flow.get(queue)

    async def delete_limits(self, queue: str) -> bool:
        shell.queue_name(queue)
        await self.writable()
        return await self._flow.delete(queue)

    async def held_counts(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self._flow.held(queues)

    async def limit_keys(self, queue: str, limit: int = 50) -> list[KeyInfo]:
        return await self._flow.keys(queue, limit)

    # --- event log (issue 17) --------------------------------------------------------------
    async def read_events(self, queue: str, after: str = "0", limit: int = 100) -> EventPage:
        return await self._events.read(queue, after, limit)

    async def wait_events(self, queue: str, after: str, timeout_s: float) -> bool:
        return await self._events.wait(queue, after, timeout_s)

    async def events_tail(self, queue: str) -> str:
        return await self._events.tail(queue)

    async def get_with_cursor(self, job_id: str) -> tuple[Job, str]:
        return await self._events.get_with_cursor(job_id)

    async def load_cursor(self, queue: str, name: str) -> str | None:
        return await self._events.load_cursor(queue, name)

    async def save_cursor(self, queue: str, name: str, cursor: str) -> None:
        await self._events.save_cursor(queue, name, cursor)

    # --- worker registry ------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl_s: float) -> None:
        await reads.register_worker(self, info, ttl_s)

    async def deregister_worker(self, worker_id: str) -> None:
        await reads.deregister_worker(self, worker_id)

    async def workers(self) -> list[WorkerInfo]:
        return await reads.workers(self)


__all__ = ["RedisBroker", "ResponseError"]
