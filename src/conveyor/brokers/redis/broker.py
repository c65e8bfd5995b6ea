"""RedisBroker: the Broker protocol on Redis, every transition one Lua script (see lua/).

Batch calls group their items by queue and send one script call per queue in one pipeline,
so a worker acks or heartbeats any number of jobs in one round trip (on Cluster: one round
trip per node, every call on one queue's slot; see cluster.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from conveyor import joblogs
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
    check_progress,
)
from conveyor.brokers.records import STATES, as_int
from conveyor.brokers.redis import batches
from conveyor.brokers.redis.cluster import Client, is_cluster_url, make_cluster_client
from conveyor.brokers.redis.dlq import RedisDlq
from conveyor.brokers.redis.events import RedisEvents
from conveyor.brokers.redis.flow import RedisFlow
from conveyor.brokers.redis.queues import RedisQueues
from conveyor.brokers.redis.records import LIST_FIELDS, job_from_hash, listed_hash
from conveyor.brokers.redis.scripts import DEFAULT_EVENTS_MAXLEN, Scripts
from conveyor.brokers.redis.server import PolicyWatch, make_client
from conveyor.brokers.redis.server import unavailable as _unavailable
from conveyor.brokers.text import safe_json, safe_message, safe_name, safe_traceback
from conveyor.errors import (
    BrokerMisconfigured,
    BrokerUnavailable,
    ConveyorError,
    CorruptJob,
    InvalidState,
    JobNotFound,
    PartialEnqueue,
    ValidationError,
)
from conveyor.flow import QueueLimits
from conveyor.ids import UID_RE, lease_nonce, split_job_id
from conveyor.jobs import (
    MAX_EPOCH_MS,
    RESULT_PREVIEW_CHARS,
    Delivery,
    EnqueueResult,
    Job,
    JobSpec,
    JobState,
    check_spec,
)
from conveyor.keys import Keys, QueueKeys
from conveyor.queues import validate_queue_name

log = logging.getLogger("conveyor.broker.redis")

T = TypeVar("T")
ENQUEUE_CHUNK = 1000
MAX_WAIT_S = 5.0
LIST_SCAN = 200
#: default of every bounded wait on Redis (CONVEYOR_REDIS_TIMEOUT_S)
TIMEOUT_S = 3.0
#: default period of the maxmemory-policy re-check (CONVEYOR_REDIS_CHECK_INTERVAL_S)
POLICY_CHECK_S = 30.0
#: get_many reads at most this many records per pipeline
READ_CHUNK = 1000
_STATE_ORDER = tuple(JobState)
#: Cluster, a worker on several queues: how often their wake markers are looked at (one
#: pipelined LPOP per node; a BLPOP over several queues' markers would be cross-slot)
CLUSTER_POLL_S = 0.05
#: scripts whose writes wait for `wait_replicas` replicas (CONVEYOR_REDIS_WAIT_REPLICAS):
#: enqueue, outcomes and the operator transitions
WAITED = frozenset({"enqueue", "ack", "fail", "release", "cancel", "retry", "redrive", "adopt",
                    "purge", "forget_queue"})


@contextmanager
def _script_errors() -> Iterator[None]:
    """A script that refused to start on a queue key it cannot use (check_seq in _lib.lua,
    before any write) is a CorruptJob, not an internal error."""
    try:
        yield
    except ResponseError as exc:
        if str(exc).startswith("corrupt_queue"):
            raise CorruptJob(f"the queue's own record is corrupt: {exc}") from exc
        raise


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
        for (queue, positions), (now, rows) in zip(self.order, replies, strict=True):
            now = int(now)
            for pos, row in zip(positions, rows, strict=True):
                spec = self.specs[pos]
                if isinstance(row, int):  # created; due at `row`
                    state = JobState.SCHEDULED if row > now else JobState.QUEUED
                    out[pos] = EnqueueResult(spec.id, True, spec.fingerprint, state, now, row)
                else:  # the live job holding the idempotency key, or this job sent again
                    out[pos] = _existing(queue, spec, row)
        return [r for r in out if r is not None]

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


def _existing(queue: str, spec: JobSpec, row: Sequence[Any]) -> EnqueueResult:
    """The job an enqueue found in place. Its record may be damaged: then its fields read as
    a DEAD job with no times, and the client's `get` reports it as corrupt (never a crash
    after the batch's other jobs were stored)."""
    uid, fp, st, created, run_at = row
    job_id = f"{queue}:{uid}"
    state = JobState(st) if st in STATES else JobState.DEAD
    created_ms = as_int(created, 0, MAX_EPOCH_MS) or 0
    return EnqueueResult(job_id, job_id == spec.id, fp or spec.fingerprint, state, created_ms,
                         as_int(run_at, 0, MAX_EPOCH_MS) or 0)


def _ack_row(uid: str, item: AckItem) -> list[Any]:
    """[uid, token, result, preview ('' when the result is its own preview), result size]:
    listings read the preview, never the result (see `RedisBroker._listed`)."""
    result = safe_json(item.result_json)
    preview = "" if len(result) <= RESULT_PREVIEW_CHARS else result[:RESULT_PREVIEW_CHARS]
    return [uid, item.token, result, preview, len(result)]


def _due_ms(rest: Sequence[Any]) -> int | None:
    """The run_at a fetch row carries (metrics only: a missing or odd one is no due time)."""
    text = str(rest[0]) if rest and rest[0] is not None else ""
    return int(text) if text.isdigit() and len(text) <= 15 else None


class RedisBroker:
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
        self.client = client
        #: a Redis Cluster (redis+cluster://): calls are routed per slot, never cross-slot
        self.cluster = isinstance(client, RedisCluster)
        #: writes of the WAITED scripts are confirmed by this many replicas (WAIT) before
        #: they answer; 0: answer once the primary has them
        if not 0 <= wait_replicas <= 16 or wait_timeout_ms < 1:
            raise ValidationError(
                "wait_replicas must be 0-16 and wait_timeout_ms at least 1",
                details={"wait_replicas": wait_replicas, "wait_timeout_ms": wait_timeout_ms})
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        #: serves `wait_for_work` (BLPOP), whose reads must outlast the block
        self.blocking_client = blocking_client or client
        self.timeout_s = timeout_s
        self.max_call_bytes = max_call_bytes
        self.keys = Keys(key_prefix)
        self.retention_s = retention_s
        self.dlq_retention_s = dlq_retention_s
        self.queue_retention_s = dict(queue_retention_s or {})
        self.check_server = check_server
        #: the maxmemory-policy verdict; None: not checked (check_server=False)
        self.policy = (policy or PolicyWatch(POLICY_CHECK_S)) if check_server else None
        #: each queue's event log keeps about this many events (0: no events)
        self.events_maxlen = events_maxlen
        self._scripts = Scripts(events_maxlen)
        self._events = RedisEvents(self)
        self._dlq = RedisDlq(self)
        self._queues = RedisQueues(self)
        self._flow = RedisFlow(self)
        #: set by from_url: lets a synchronous client open its own connection (SyncEnqueuer)
        self.url: str | None = None

    #: maps connection errors to BrokerUnavailable (for the helpers beside the broker)
    unavailable = staticmethod(_unavailable)

    @classmethod
    def from_url(
        cls, url: str, *, key_prefix: str = "cv", timeout_s: float = TIMEOUT_S,
        policy_check_s: float = POLICY_CHECK_S, **kw: Any,
    ) -> RedisBroker:
        """Two pools: one for commands, one for blocking waits (their reads last longer).
        Every new connection of either makes the policy due for a look."""
        watch = PolicyWatch(policy_check_s)
        client: Client
        blocking: Client
        # a reply to a write that WAITs for replicas may take the WAIT's timeout longer
        wait_s = kw.get("wait_timeout_ms", 1000) / 1000 if kw.get("wait_replicas") else 0.0
        if is_cluster_url(url):
            client = make_cluster_client(url, timeout_s=timeout_s,
                                         read_timeout_s=timeout_s + wait_s)
            blocking = make_cluster_client(url, timeout_s=timeout_s,
                                           read_timeout_s=MAX_WAIT_S + timeout_s,
                                           max_connections=16)
        else:
            client = make_client(url, timeout_s=timeout_s, read_timeout_s=timeout_s + wait_s,
                                 on_connect=watch.on_connect)
            blocking = make_client(url, timeout_s=timeout_s,
                                   read_timeout_s=MAX_WAIT_S + timeout_s,
                                   on_connect=watch.on_connect, max_connections=16)
        broker = cls(client, key_prefix=key_prefix, blocking_client=blocking, policy=watch,
                     timeout_s=timeout_s, **kw)
        broker.url = url
        return broker

    @property
    def scripts(self) -> Scripts:
        return self._scripts

    def _q(self, queue: str) -> QueueKeys:
        return self.keys.queue(queue)

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self.wait_replicas and name in WAITED:
            return (await self._pipeline([(name, keys, args)], ()))[0]
        with _script_errors(), _unavailable():
            return await self._scripts.run(self.client, name, keys, args)

    async def _run_many(
        self, calls: list[batches.Call], register: Sequence[str] = (),
    ) -> list[Any]:
        """Script calls in as few round trips as their bytes allow (a pipeline carries at
        most PIPELINE_CALLS calls' worth of `max_call_bytes`). `register`: queues to add to
        the registry after the calls, in the last round trip."""
        out: list[Any] = []
        groups = batches.pipelines(calls, self.max_call_bytes * batches.PIPELINE_CALLS)
        for i, group in enumerate(groups):
            out += await self._pipeline(group, register if i == len(groups) - 1 else ())
        return out

    async def _pipeline(self, calls: list[batches.Call], register: Sequence[str]) -> list[Any]:
        """Several script calls in one round trip (Cluster: one per node); NOSCRIPT replies
        are reloaded and re-run. On one Redis the registry add rides in the same round trip,
        after the scripts; on Cluster (`cv:queues` is in a slot of its own) it is sent after
        every script succeeded, so a failed enqueue leaves no name behind."""
        waited = self.wait_replicas > 0 and any(c[0] in WAITED for c in calls)
        if len(calls) == 1 and not register and not waited:
            name, keys, args = calls[0]
            return [await self._run(name, keys, args)]
        with _script_errors(), _unavailable():
            results, acks = await self._send(calls, () if self.cluster else register, waited)
            missing = [i for i, res in enumerate(results) if isinstance(res, NoScriptError)]
            if missing:  # restarted, flushed, or a promoted replica: load and send those again
                await self._scripts.load(self.client)
                again, more = await self._send([calls[i] for i in missing],
                                               () if self.cluster else register, waited)
                for i, res in zip(missing, again, strict=True):
                    results[i] = res
                acks += more
            failed = [res for res in results if isinstance(res, Exception)]
            if failed:
                if register and not self.cluster:
                    await self._unregister_failed(calls, results, register)
                elif register:  # Cluster: register the queues whose jobs were stored
                    stored = self._stored_queues(calls, results, register)
                    if stored:
                        await self.client.sadd(self.keys.queues, *stored)
                raise failed[0]
            self._confirmed(acks)
            if register and self.cluster:
                await self.client.sadd(self.keys.queues, *register)
            return results

    def _stored_queues(
        self, calls: Sequence[batches.Call], results: Sequence[Any], register: Sequence[str],
    ) -> list[str]:
        """The queues of `register` at least one of whose calls succeeded."""
        ok = {keys[0] for (_, keys, _), res in zip(calls, results, strict=True)
              if keys and not isinstance(res, Exception)}
        return [q for q in register if self._q(q).job_prefix in ok]

    async def _unregister_failed(
        self, calls: Sequence[batches.Call], results: Sequence[Any], register: Sequence[str],
    ) -> None:
        """Single Redis: the registry add rode in the same round trip as scripts that failed.
        A queue none of whose calls succeeded and which holds no job is taken out again,
        with the look-again step of `forget` (a job that arrived meanwhile keeps it)."""
        stored = set(self._stored_queues(calls, results, register))
        for queue in register:
            qk = self._q(queue)
            if queue in stored:
                continue
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(qk.listing)
            pipe.exists(qk.paused)
            listed, paused = await pipe.execute()
            if int(listed) or int(paused):
                continue  # a known queue: leave it
            await self.client.srem(self.keys.queues, queue)
            if int(await self.client.zcard(qk.listing)):
                await self.client.sadd(self.keys.queues, queue)

    async def _send(
        self, calls: Sequence[batches.Call], register: Sequence[str], waited: bool,
    ) -> tuple[list[Any], list[Any]]:
        """One pipeline: the calls, the registry add, then WAIT on each node written (on
        the same connection as the writes, so it covers them). Returns the calls' replies
        and the WAIT replies."""
        pipe = self.client.pipeline(transaction=False)
        for name, keys, args in calls:
            # execute_command, not .evalsha: redis-py's cluster pipeline refuses the method by
            # name (a legacy list), while the command itself routes by its keys like any
            # other: each call is on one queue's slot, the pipeline sends one batch per node
            pipe.execute_command("EVALSHA", self._scripts.sha[name], len(keys), *keys, *args)
        if register:
            pipe.sadd(self.keys.queues, *register)
        written = [c[1][0] for c in calls if c[1]]
        waits = self._add_waits(pipe, written) if waited else 0
        before = self._owners(written) if waits else []
        results: list[Any] = await pipe.execute(raise_on_error=False)
        acks = results[len(results) - waits:] if waits else []
        if waits and self._owners(written) != before:
            # a call was redirected (MOVED / ASK: a failover or a migration meanwhile), so its
            # write landed on another node than the WAIT was sent to: not confirmed
            acks.append(BrokerUnavailable(
                "a write was redirected to another node while waiting for replicas: not"
                " confirmed; sending it again is safe"))
        return results[: len(calls)], acks

    def _owners(self, keys: Sequence[str]) -> list[str]:
        """Cluster: the node each key's slot is served by, as the client knows it now."""
        if not isinstance(self.client, RedisCluster):
            return []
        return [getattr(self.client.get_node_from_key(k), "name", "") for k in keys]

    def _add_waits(self, pipe: Any, keys: Sequence[str]) -> int:
        """Append `WAIT wait_replicas wait_timeout_ms` for the node of each key; returns how
        many were added."""
        args = ("WAIT", self.wait_replicas, self.wait_timeout_ms)
        if not isinstance(self.client, RedisCluster):
            pipe.execute_command(*args)
            return 1
        nodes = {}
        for key in keys:
            node = self.client.get_node_from_key(key)
            if node is None:
                raise BrokerUnavailable(f"no Redis Cluster node serves the slot of {key}")
            nodes[node.name] = node
        for node in nodes.values():
            pipe.execute_command(*args, target_nodes=node)
        return len(nodes)

    def _confirmed(self, acks: Sequence[Any]) -> None:
        """Refuse to answer for a write fewer than `wait_replicas` replicas confirmed: it is
        on the primary, but a failover now may lose it. Resending is safe (every script
        tolerates a repeat: see server.retry_policy)."""
        for ack in acks:
            if isinstance(ack, BrokerUnavailable):
                raise ack
            if isinstance(ack, Exception):  # e.g. "WAIT cannot be used with replica instances"
                raise BrokerUnavailable(
                    f"the write could not be confirmed by replicas ({ack}): the node changed"
                    " role meanwhile; sending it again is safe") from ack
            if int(ack) < self.wait_replicas:
                raise BrokerUnavailable(
                    f"the write reached the primary but only {int(ack)} of"
                    f" {self.wait_replicas} replica(s) confirmed it within"
                    f" {self.wait_timeout_ms} ms (CONVEYOR_REDIS_WAIT_REPLICAS): a failover"
                    " now could lose it; sending it again is safe",
                    details={"replicas_confirmed": int(ack),
                             "wait_replicas": self.wait_replicas},
                )

    # --- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        with _unavailable():
            await self.client.ping()
            if not isinstance(self.client, RedisCluster):
                await self._check_role(self.client)
            if self.check_server:
                await self._check_server()
            await self._scripts.load(self.client)

    async def _check_role(self, client: Redis) -> None:
        """A `redis://` URL must reach a standalone primary: a cluster node answers only
        for its own slots (MOVED for the rest), a replica refuses writes."""
        pipe = client.pipeline(transaction=False)
        pipe.info("cluster")
        pipe.info("replication")
        cluster, replication = await pipe.execute()
        if int(cluster.get("cluster_enabled", 0)):
            raise BrokerMisconfigured(
                "this Redis is a Redis Cluster node: use a cluster URL,"
                " redis+cluster://host:port[,host:port...]/ (rediss+cluster:// for TLS)",
                details={"field": "broker_url", "cluster_enabled": 1})
        if replication.get("role") == "slave":
            raise BrokerMisconfigured(
                "this Redis is a read-only replica: point the URL at its primary"
                f" ({replication.get('master_host')}:{replication.get('master_port')})",
                details={"field": "broker_url", "role": "replica"})

    async def _memory_infos(self) -> dict[str, Any]:
        """`INFO memory` of every node the client knows (one Redis: that one)."""
        if isinstance(self.client, RedisCluster):
            got = await self.client.info("memory", target_nodes=RedisCluster.ALL_NODES)
            return dict(got) if len(self.client.get_nodes()) > 1 else {"": got}
        return {"": await self.client.info("memory")}

    def _topology(self) -> None:
        if isinstance(self.client, RedisCluster) and self.policy is not None:
            self.policy.topology(frozenset(
                (n.name, str(n.server_type)) for n in self.client.get_nodes()))

    async def _check_server(self) -> None:
        assert self.policy is not None
        self._topology()
        self.policy.due()
        error = self.policy.record_all(await self._memory_infos())
        if error is not None:
            raise error
        if isinstance(self.client, RedisCluster):
            infos = await self.client.info("persistence", target_nodes=RedisCluster.ALL_NODES)
            persistence = dict(infos) if len(self.client.get_nodes()) > 1 else {"": infos}
        else:
            persistence = {"": await self.client.info("persistence")}
        for node, info in sorted(persistence.items()):
            if not int(info.get("aof_enabled", 0)):
                log.warning(
                    "redis_aof_disabled",
                    extra={"node": node or None,
                           "hint": "enable appendonly yes (on every node) so a restart or a"
                                   " failover to this node loses no job"},
                )

    async def _writable(self, max_age_s: float | None = None) -> None:
        """Refuse new work while Redis may evict keys (`broker_misconfigured`); looks at the
        policy again when it is due (every `policy_check_s`, on a new connection, every
        second while wrong). `max_age_s`: look now if the last look is older."""
        watch = self.policy
        if watch is None:
            return
        self._topology()
        if watch.due(max_age_s):
            with _unavailable():
                watch.record_all(await self._memory_infos())
        if watch.error is not None:
            raise watch.error

    async def check_ready(self) -> None:
        with _unavailable():
            await self.client.ping()
            if isinstance(self.client, RedisCluster):
                await self._cluster_ok(self.client)
        await self._writable(max_age_s=1.0)

    @staticmethod
    async def _cluster_ok(client: RedisCluster) -> None:
        """Ready only while every primary says every slot is served (`cluster_state:ok`)."""
        got = await client.execute_command("CLUSTER INFO", target_nodes=RedisCluster.PRIMARIES)
        infos = got.values() if isinstance(got, dict) and "cluster_state" not in got else [got]
        for info in infos:
            text = info if isinstance(info, str) else str(info.get("cluster_state", ""))
            if "ok" not in text.split("cluster_state:", 1)[-1][:3] and text != "ok":
                raise BrokerUnavailable("Redis Cluster is not serving every slot"
                                        " (cluster_state is not ok): a failover is under way")

    async def close(self) -> None:
        await self.client.aclose()
        if self.blocking_client is not self.client:
            await self.blocking_client.aclose()

    async def ping(self) -> bool:
        try:
            with _unavailable():
                return bool(await self.client.ping())
        except BrokerUnavailable:
            return False

    async def now_ms(self) -> int:
        with _unavailable():
            sec, usec = await self.client.time()
        return int(sec) * 1000 + int(usec) // 1000

    # --- producer -------------------------------------------------------------------------
    def enqueue_plan(self, specs: Sequence[JobSpec]) -> EnqueuePlan:
        """The script calls that store `specs`: one per queue and bounded chunk of jobs (at
        most 1,000 and `max_call_bytes`, see batches.py)."""
        for spec in specs:
            check_spec(spec)  # all or nothing: no call is made unless every spec is valid
        batch = batches.build(
            "enqueue", specs, lambda s: s.id,
            lambda q: self._enqueue_keys(self._q(q)),
            lambda uid, s: [
                uid, s.type, s.payload_json, str(s.priority), str(s.max_attempts),
                "" if s.timeout_ms is None else str(s.timeout_ms),
                -1 if s.delay_ms is None else s.delay_ms,
                -1 if s.run_at_ms is None else s.run_at_ms, s.idempotency_key or "", s.fingerprint,
                s.trace,
                s.limit_key or "",
            ],
            max_bytes=self.max_call_bytes, max_items=ENQUEUE_CHUNK,
        )
        return EnqueuePlan(specs=list(specs), queues=list(dict.fromkeys(q for q, _ in batch.parts)),
                           calls=batch.calls, order=batch.parts)

    @staticmethod
    def _enqueue_keys(qk: QueueKeys) -> list[str]:
        return [qk.job_prefix, qk.idem_prefix, qk.queued, qk.scheduled, qk.seq, qk.marker,
                qk.listing]

    async def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        await self._writable()
        plan = self.enqueue_plan(specs)
        if not self.cluster or len(plan.calls) < 2:
            return plan.results(await self._run_many(plan.calls, register=plan.queues))
        try:
            return plan.results(await self._run_many(plan.calls, register=plan.queues))
        except BrokerUnavailable:
            return await self._enqueue_apart(plan)

    def sync_enqueuer(self) -> SyncEnqueuer | None:
        """The blocking enqueue path (`redis/sync.py`) over a connection of its own; only a
        broker made by `from_url` has one (it needs the URL to connect to)."""
        from conveyor.brokers.redis.sync import SyncEnqueuer as RedisSyncEnqueuer

        return None if self.url is None else RedisSyncEnqueuer(self, self.url)

    async def _enqueue_apart(self, plan: EnqueuePlan) -> list[EnqueueResult]:
        """Cluster, a batch over several slots that failed somewhere: each call again on its
        own (a repeat finds its jobs already stored), so the caller learns exactly which
        jobs are stored. Some stored, some not: `PartialEnqueue` names both."""
        replies: list[Any] = []
        failed: BrokerUnavailable | None = None
        for name, keys, args in plan.calls:
            try:
                replies.append(await self._run(name, keys, args))
            except BrokerUnavailable as exc:
                failed = exc
                replies.append(None)
        stored = [i for i, r in enumerate(replies) if r is not None]
        if failed is None:
            await self.remember_queues(plan.queues)
            return plan.results(replies)
        await self.remember_queues([plan.order[i][0] for i in stored])
        raise plan.partial(stored, replies, failed)

    async def remember_queues(self, queues: Sequence[str]) -> None:
        """Add queues to the registry of known queues. Always sent AFTER the write that put
        jobs in them: a `forget_queue` that ran in between found the queue empty and dropped
        it, and this puts it back (so no process may cache what it registered)."""
        if queues:
            with _unavailable():
                await self.client.sadd(self.keys.queues, *queues)

    # --- worker ---------------------------------------------------------------------------
    async def fetch(self, queue: str, count: int, worker_id: str, lease_ms: int) -> FetchBatch:
        await self._writable()
        qk = self._q(queue)
        keys = [qk.job_prefix, qk.queued, qk.scheduled, qk.running, qk.seq, qk.marker, qk.paused,
                qk.dead, qk.deaths]
        now, next_due, rows, aside = await self._run(
            "fetch", keys, [max(count, 0), lease_ms, safe_name(worker_id), 1000, lease_nonce()]
        )
        if aside:
            log.warning("corrupt_jobs_set_aside", extra={"queue": queue, "count": int(aside)})
        deliveries = [
            Delivery(
                job_id=f"{queue}:{uid}", queue=queue, type=jtype, payload_json=payload,
                token=token, attempts=int(attempts), max_attempts=int(maxatt),
                timeout_s=None if timeout is None else int(timeout) / 1000,
                due_ms=_due_ms(rest), leased_ms=int(now),
                trace=str(rest[1]) if len(rest) > 1 and rest[1] else "",
            )
            for uid, token, jtype, payload, attempts, maxatt, timeout, *rest in rows
        ]
        due = int(next_due)
        return FetchBatch(deliveries, int(now), None if due < 0 else due)

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        timeout = min(max(timeout_s, 0.001), MAX_WAIT_S)
        if self.cluster and len(set(queues)) > 1:
            return await self._poll_markers(list(dict.fromkeys(queues)), timeout)
        with _unavailable():
            got = await self.blocking_client.blpop(
                [self._q(q).marker for q in queues], timeout=timeout
            )
        return got is not None

    async def _poll_markers(self, queues: Sequence[str], wait_s: float) -> bool:
        """Cluster: the markers of several queues are in several slots, so no one BLPOP can
        wait on them; take them with one pipelined LPOP per node every CLUSTER_POLL_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            with _unavailable():
                pipe = self.client.pipeline(transaction=False)
                for q in queues:
                    pipe.lpop(self._q(q).marker)
                if any(v is not None for v in await pipe.execute()):
                    return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(CLUSTER_POLL_S, remaining))

    def _batch(self, script: str, items: Sequence[T], job_id: Callable[[T], str],
               keys_of: Callable[[QueueKeys], list[str]], row_of: Callable[[str, T], Any],
               lead: Sequence[Any] = ()) -> batches.Batch:
        return batches.build(script, items, job_id, lambda q: keys_of(self._q(q)), row_of,
                             max_bytes=self.max_call_bytes, lead=lead)

    async def heartbeat(self, leases: Sequence[LeaseRef], lease_ms: int) -> HeartbeatReply:
        batch = self._batch("heartbeat", leases, lambda r: r.job_id,
                            lambda qk: [qk.job_prefix, qk.running],
                            lambda uid, ref: [uid, ref.token], lead=[lease_ms])
        replies = await self._run_many(batch.calls)
        out = HeartbeatReply()
        for (q, _), (lost, cancels) in zip(batch.parts, replies, strict=True):
            out.extend(f"{q}:{uid}" for uid in lost)
            for uid, actor in zip(cancels[::2], cancels[1::2], strict=True):
                out.cancel_requested[f"{q}:{uid}"] = str(actor)
        return out

    async def cancel_running(self, leases: Sequence[LeaseRef]) -> list[bool]:
        batch = self._batch(
            "cancel_running", leases, lambda r: r.job_id,
            lambda qk: [qk.job_prefix, qk.running, qk.cancelled, qk.dead, qk.deaths],
            lambda uid, ref: [uid, ref.token],
        )
        return [bool(ok) for ok in batch.spread(await self._run_many(batch.calls), len(leases))]

    async def append_logs(self, items: Sequence[LogAppend]) -> list[bool]:
        if not items:
            return []
        batch = self._batch("append_logs", items, lambda i: i.job_id,
                            lambda qk: [qk.job_prefix, qk.logs_prefix],
                            lambda uid, i: [uid, i.token, list(i.lines)],
                            lead=[joblogs.MAX_LINES, joblogs.MAX_BYTES])
        replies = await self._run_many(batch.calls)
        return [bool(ok) for ok in batch.spread(replies, len(items))]

    async def job_logs(self, job_id: str) -> list[str]:
        queue, uid = split_job_id(job_id)
        with _unavailable():
            lines = await self.client.lrange(self._q(queue).logs(uid), 0, -1)
        return [str(line) for line in lines]

    async def ack(self, items: Sequence[AckItem]) -> list[bool]:
        batch = self._batch(
            "ack", items, lambda a: a.job_id,
            lambda qk: [qk.job_prefix, qk.running, qk.succeeded, qk.dead, qk.deaths],
            _ack_row,
        )
        return [bool(ok) for ok in batch.spread(await self._run_many(batch.calls), len(items))]

    async def fail(self, items: Sequence[FailItem]) -> list[JobState | None]:
        batch = self._batch(
            "fail", items, lambda f: f.job_id,
            lambda qk: [qk.job_prefix, qk.running, qk.queued, qk.scheduled, qk.dead, qk.seq,
                        qk.marker, qk.deaths, qk.cancelled],
            lambda uid, f: [
                uid, f.token, -1 if f.retry_delay_ms is None else max(int(f.retry_delay_ms), 0),
                safe_name(f.error_code), safe_message(f.message), safe_traceback(f.traceback),
            ],
        )
        states = batch.spread(await self._run_many(batch.calls), len(items))
        return [JobState(s) if s else None for s in states]

    async def release(self, leases: Sequence[LeaseRef]) -> list[bool]:
        batch = self._batch(
            "release", leases, lambda r: r.job_id,
            lambda qk: [qk.job_prefix, qk.running, qk.queued, qk.marker, qk.dead, qk.deaths],
            lambda uid, ref: [uid, ref.token],
        )
        return [bool(ok) for ok in batch.spread(await self._run_many(batch.calls), len(leases))]

    async def progress(self, items: Sequence[ProgressItem]) -> list[bool]:
        rows = {id(p): check_progress(p.value, p.message) for p in items}
        batch = self._batch(
            "progress", items, lambda p: p.job_id, lambda qk: [qk.job_prefix],
            lambda uid, p: [uid, p.token, rows[id(p)][0], safe_message(rows[id(p)][1])],
        )
        return [bool(ok) for ok in batch.spread(await self._run_many(batch.calls), len(items))]

    async def release_held(self, leases: Sequence[LeaseRef], hold_ms: int) -> list[bool]:
        await self._writable()
        return await self._flow.release_held(leases, hold_ms)

    async def promote_due(self, queue: str, limit: int = 1000) -> int:
        qk = self._q(queue)
        keys = [qk.job_prefix, qk.scheduled, qk.queued, qk.seq, qk.marker, qk.dead, qk.deaths]
        return int(await self._run("promote", keys, [limit]))

    async def reap_expired(self, queue: str, limit: int = 1000) -> ReapResult:
        qk = self._q(queue)
        keys = [qk.job_prefix, qk.running, qk.queued, qk.dead, qk.marker, qk.deaths,
                qk.cancelled]
        requeued, dead, aside, cancelled = await self._run("reap", keys, [limit])
        if aside:
            log.warning("corrupt_jobs_set_aside", extra={"queue": queue, "count": int(aside)})
        return ReapResult(requeued=int(requeued), dead=int(dead), cancelled=int(cancelled))

    async def purge_expired(self, queue: str, limit: int = 1000) -> int:
        qk = self._q(queue)
        retention = self.queue_retention_s.get(queue, self.retention_s)
        keys = [qk.job_prefix, qk.succeeded, qk.cancelled, qk.dead, qk.idem_prefix, qk.listing,
                qk.deaths]
        args = [int(retention * 1000), int(self.dlq_retention_s * 1000), limit]
        return int(await self._run("expire", keys, args))

    # --- operator -------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        queue, uid = split_job_id(job_id)
        with _unavailable():
            h = cast(dict[str, str], await self.client.hgetall(self._q(queue).job(uid)))
        if not h:
            raise JobNotFound(f"job {job_id} not found", details={"job_id": job_id})
        return job_from_hash(queue, uid, h)

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Many jobs by id in few round trips (pipelines of READ_CHUNK); None where unknown."""
        where = [split_job_id(j) for j in job_ids]
        hashes: list[dict[str, str]] = []
        with _unavailable():
            for start in range(0, len(where), READ_CHUNK):
                pipe = self.client.pipeline(transaction=False)
                for queue, uid in where[start : start + READ_CHUNK]:
                    pipe.hgetall(self._q(queue).job(uid))
                hashes += await pipe.execute()
        # a bulk read, like a listing: a corrupt record reads as far as it can (corrupt_job)
        return [job_from_hash(q, u, h, strict=False) if h else None
                for (q, u), h in zip(where, hashes, strict=True)]

    async def cancel(self, job_id: str, actor: str = "manual") -> Job:
        queue, uid = split_job_id(job_id)
        await self._writable()
        qk = self._q(queue)
        keys = [qk.job(uid), qk.queued, qk.scheduled, qk.cancelled, qk.dead, qk.deaths]
        res = await self._run("cancel", keys, [uid, safe_name(actor)])
        if res == "requested":  # RUNNING: its worker is asked to stop it
            res = "ok"
        self._raise_for(job_id, res, "ok", "only scheduled, queued or running jobs can be "
                        "cancelled")
        return await self.get(job_id)

    async def retry(self, job_id: str, actor: str = "manual") -> Job:
        queue, uid = split_job_id(job_id)
        await self._writable()
        _, res = await self._retry_script(queue, [uid], actor)
        self._raise_for(job_id, res[0], "retried", "only dead or cancelled jobs can be retried")
        return await self.get(job_id)

    @staticmethod
    def _raise_for(job_id: str, res: str, ok: str, why: str) -> None:
        if res == ok:
            return
        if res == "not_found":
            raise JobNotFound(f"job {job_id} not found", details={"job_id": job_id})
        if res.startswith("corrupt:"):
            raise CorruptJob(f"job {job_id} has a corrupt record: {res[8:]}",
                             details={"job_id": job_id})
        raise InvalidState(
            f"job {job_id} is {res}: {why}", details={"job_id": job_id, "state": res}
        )

    async def _retry_script(self, queue: str, args: list[Any], actor: str) -> Any:
        qk = self._q(queue)
        keys = [qk.job_prefix, qk.dead, qk.cancelled, qk.queued, qk.seq, qk.marker, qk.deaths]
        return await self._run("retry", keys, [safe_name(actor), *args])

    async def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        """Newest first across the listing indexes of the queues, merged by uid (uids sort
        by creation time). Scans at most LIST_SCAN candidates per call when filtering."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000", details={"limit": limit})
        if cursor is not None and not UID_RE.fullmatch(cursor):
            raise ValidationError("invalid cursor", details={"cursor": cursor})
        names = [validate_queue_name(queue)] if queue is not None else await self.queues()
        filtered = state is not None or type is not None
        scan = max(limit, LIST_SCAN) if filtered else limit
        top = f"({cursor}" if cursor else "+"
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            for q in names:
                pipe.zrevrangebylex(self._q(q).listing, top, "-", start=0, num=scan)
            batches = [[str(u) for u in b] for b in await pipe.execute()] if names else []
        # Below the highest last-uid of a full batch, some queue may hold unseen jobs.
        floor = max((b[-1] for b in batches if len(b) == scan), default="")
        candidates = sorted(
            ((u, q) for q, b in zip(names, batches, strict=True) for u in b if u >= floor),
            reverse=True,
        )
        more = floor != ""
        if filtered:
            with _unavailable():
                pipe = self.client.pipeline(transaction=False)
                for u, q in candidates:
                    pipe.hmget(self._q(q).job(u), "state", "type")
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
        jobs = await self._listed([(q, u) for u, q in picked])
        return Page(items=jobs, next_cursor=last if more and last else None)

    async def _listed(self, picked: Sequence[tuple[str, str]]) -> list[Job]:
        """The (queue, uid) jobs as a listing shows them: every field but the result, whose
        preview stands in for it (stored at ack time; a record acked before previews existed
        has its result read instead). A record that does not parse is shown as corrupt,
        never the end of the listing. Jobs gone meanwhile are left out."""
        if not picked:
            return []
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            for q, u in picked:
                pipe.hmget(self._q(q).job(u), LIST_FIELDS)
            hashes = [listed_hash(values) for values in await pipe.execute()]
            old = [i for i, h in enumerate(hashes) if h.get("state") == "succeeded"
                   and "rprev" not in h]
            if old:
                pipe = self.client.pipeline(transaction=False)
                for i in old:
                    pipe.hget(self._q(picked[i][0]).job(picked[i][1]), "result")
                for i, result in zip(old, await pipe.execute(), strict=True):
                    if result is not None:
                        hashes[i]["result"] = result
        return [job_from_hash(q, u, h, strict=False)
                for (q, u), h in zip(picked, hashes, strict=True) if h]

    async def _list_index(
        self, queue: str, state: JobState, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """One state index in its own order: newest first for finished states (by finish
        time), next-to-run first otherwise. The cursor is an offset."""
        validate_queue_name(queue)
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000", details={"limit": limit})
        qk = self._q(queue)
        index = qk.index(state)
        start = 0
        if cursor is not None:
            if not cursor.isdigit():
                raise ValidationError("invalid cursor", details={"cursor": cursor})
            start = int(cursor)
        newest_first = state in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)
        with _unavailable():
            if newest_first:
                raw = await self.client.zrevrange(index, start, start + limit - 1)
            else:
                raw = await self.client.zrange(index, start, start + limit - 1)
            uids = [str(u) for u in raw]
        jobs = await self._listed([(queue, u) for u in uids])
        nxt = str(start + limit) if len(uids) == limit else None
        return Page(items=jobs, next_cursor=nxt)

    async def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page:
        return await self._list_index(queue, JobState.DEAD, limit, cursor)

    async def dlq_scan(
        self, queue: str, selector: DeadSelector | None = None, *, limit: int = 100,
        cursor: str | None = None, scan: int = 1000,
    ) -> DeadScan:
        return await self._dlq.scan(queue, selector, limit, cursor, scan)

    async def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        actor: str = "dlq.redrive", *, selector: DeadSelector | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        await self._writable()
        return await self._dlq.redrive(queue, job_ids, limit, actor, selector, dry_run)

    async def dlq_move(
        self, queue: str, job_ids: Sequence[str], target_queue: str, actor: str,
        *, selector: DeadSelector | None = None,
    ) -> list[tuple[str, str]]:
        await self._writable()
        return await self._dlq.move(queue, job_ids, target_queue, actor, selector)

    async def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        *, selector: DeadSelector | None = None, dry_run: bool = False,
    ) -> list[str]:
        await self._writable()
        return await self._dlq.purge(queue, job_ids, limit, selector, dry_run)

    async def claim_deaths(self, queue: str, limit: int, lease_ms: int) -> list[DeathEvent]:
        return await self._dlq.claim_deaths(queue, limit, lease_ms)

    async def ack_deaths(self, queue: str, events: Sequence[DeathEvent]) -> int:
        return await self._dlq.ack_deaths(queue, events)

    async def pause(self, queue: str) -> None:
        validate_queue_name(queue)
        await self._writable()
        key = self._q(queue).paused
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, "1")
            waits = self._add_waits(pipe, [key]) if self.wait_replicas else 0
            replies = await pipe.execute()
        self._confirmed(replies[len(replies) - waits:] if waits else [])

    async def resume(self, queue: str) -> None:
        validate_queue_name(queue)
        await self._writable()
        qk = self._q(queue)
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(qk.paused)
            pipe.lpush(qk.marker, "1")
            pipe.ltrim(qk.marker, 0, 0)
            waits = self._add_waits(pipe, [qk.paused]) if self.wait_replicas else 0
            replies = await pipe.execute()
        self._confirmed(replies[len(replies) - waits:] if waits else [])

    async def is_paused(self, queue: str) -> bool:
        with _unavailable():
            return bool(await self.client.exists(self._q(queue).paused))

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return await self._queues.paused(queues)

    async def forget_queue(self, queue: str) -> None:
        await self._writable()
        await self._queues.forget(queue)

    async def queues(self) -> list[str]:
        with _unavailable():
            names = await self.client.smembers(self.keys.queues)
        return sorted(str(n) for n in names)

    async def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Counts per state; QUEUED includes the jobs in key lanes (flow control)."""
        names = list(queues) if queues is not None else await self.queues()
        out = await self._queues.stats(names)
        for q, n in (await self._flow.limited(names)).items():
            out[q]["queued"] += n
        return out

    async def limited_counts(self, queues: Sequence[str]) -> dict[str, int]:
        return await self._flow.limited(queues)

    # --- flow control ---------------------------------------------------------------------
    async def set_limits(self, queue: str, limits: QueueLimits) -> QueueLimits:
        await self._writable()
        return await self._flow.set(queue, limits)

    async def get_limits(self, queue: str) -> QueueLimits | None:
        return await self._flow.get(queue)

    async def delete_limits(self, queue: str) -> bool:
        await self._writable()
        return await self._flow.delete(queue)

    async def held_counts(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self._flow.held(queues)

    async def limit_keys(self, queue: str, limit: int = 50) -> list[KeyInfo]:
        return await self._flow.keys(queue, limit)

    async def ready_ages(self, queues: Sequence[str]) -> dict[str, int]:
        return await self._queues.ready_ages(list(queues))

    async def series(
        self, queue: str, minutes: int, type: str | None = None
    ) -> list[SeriesPoint]:
        return await self._queues.series(queue, minutes, type)

    async def audit(self, queue: str) -> AuditReport:
        """Scan one queue for invariant 1 (one place). Reads only; meant for quiet moments."""
        qk = self._q(queue)
        report = AuditReport(queue=queue)
        with _unavailable():
            members: dict[str, list[JobState]] = defaultdict(list)
            for state in _STATE_ORDER:
                for uid in await self.client.zrange(qk.index(state), 0, -1):
                    members[str(uid)].append(state)
            await self._flow.audit(queue, report, members)
            listed = {str(u) for u in await self.client.zrange(qk.listing, 0, -1)}
            records: dict[str, str | None] = {}
            async for key in self._scan(qk.job_prefix + "*"):
                records[key[len(qk.job_prefix):]] = None
            pipe = self.client.pipeline(transaction=False)
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
        report.dangling += [f"{queue}:{u}" for u in listed if u not in records]
        report.unlisted = [f"{queue}:{u}" for u in records if u not in listed]
        return report

    async def _scan(self, match: str) -> AsyncIterator[str]:
        """SCAN for a pattern within one queue's slot: on Cluster only on the node that
        serves that slot (a SCAN of every node would read every other queue's keys too)."""
        if not isinstance(self.client, RedisCluster):
            async for key in self.client.scan_iter(match=match, count=1000):
                yield str(key)
            return
        node = self.client.get_node_from_key(match)
        async for key in self.client.scan_iter(match=match, count=1000, target_nodes=node):
            yield str(key)
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
        now = await self.now_ms()
        data = asdict(info)
        data["last_seen_ms"] = now
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.worker(info.id), json.dumps(data), px=int(ttl_s * 1000))
            pipe.zadd(self.keys.workers, {info.id: now})
            pipe.zremrangebyscore(self.keys.workers, "-inf", now - int(ttl_s * 1000))
            await pipe.execute()

    async def deregister_worker(self, worker_id: str) -> None:
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.keys.worker(worker_id))
            pipe.zrem(self.keys.workers, worker_id)
            await pipe.execute()

    async def workers(self) -> list[WorkerInfo]:
        with _unavailable():
            ids = [str(i) for i in await self.client.zrange(self.keys.workers, 0, -1)]
            raw: list[str | None] = []
            for start in range(0, len(ids), READ_CHUNK):  # GETs, not MGET: one slot each
                pipe = self.client.pipeline(transaction=False)
                for i in ids[start : start + READ_CHUNK]:
                    pipe.get(self.keys.worker(i))
                raw += await pipe.execute()
        out: list[WorkerInfo] = []
        for text in raw:
            if not text:
                continue  # expired: the worker stopped heart-beating
            try:
                out.append(WorkerInfo(**json.loads(text)))
            except (TypeError, ValueError):
                log.warning("corrupt_worker_record", extra={"record": text[:200]})
        return out


__all__ = ["RedisBroker", "ResponseError"]
