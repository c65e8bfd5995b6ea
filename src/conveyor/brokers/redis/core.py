"""The Redis broker's core: what every part of it (broker.py, transitions.py, enqueue.py,
reads.py, dlq.py, queues.py, flow.py, events.py, the sync enqueuer) shares. The clients and
their factory, the key builder, the script runner (pipelines bounded by bytes, NOSCRIPT
reloads, WAIT for replicas), the error mapping and the eviction-policy gate on new work.
Nothing here knows a transition; nothing here imports the broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from conveyor.brokers.redis import batches
from conveyor.brokers.redis.cluster import Client, is_cluster_url, make_cluster_client
from conveyor.brokers.redis.keys import Keys, QueueKeys
from conveyor.brokers.redis.scripts import DEFAULT_EVENTS_MAXLEN, Scripts
from conveyor.brokers.redis.server import PolicyWatch, make_client
from conveyor.brokers.redis.server import unavailable as _unavailable
from conveyor.errors import BrokerUnavailable, CorruptJob, ValidationError

MAX_WAIT_S = 5.0
#: default of every bounded wait on Redis (CONVEYOR_REDIS_TIMEOUT_S)
TIMEOUT_S = 3.0
#: default period of the maxmemory-policy re-check (CONVEYOR_REDIS_CHECK_INTERVAL_S)
POLICY_CHECK_S = 30.0
#: scripts whose writes wait for `wait_replicas` replicas (CONVEYOR_REDIS_WAIT_REPLICAS):
#: enqueue, outcomes and the operator transitions
WAITED = frozenset({"enqueue", "ack", "fail", "release", "cancel", "retry", "redrive", "adopt",
                    "purge", "forget_queue"})


@contextmanager
def script_errors() -> Iterator[None]:
    """A script that refused to start on a queue key it cannot use (check_seq in _lib.lua,
    before any write) is a CorruptJob, not an internal error."""
    try:
        yield
    except ResponseError as exc:
        if str(exc).startswith("corrupt_queue"):
            raise CorruptJob(f"the queue's own record is corrupt: {exc}") from exc
        raise


def make_clients(
    url: str, *, timeout_s: float, wait_s: float, watch: PolicyWatch,
) -> tuple[Client, Client]:
    """Two clients: one for commands (its reads outlast a WAIT of `wait_s`), one for blocking
    waits (its reads outlast the block). Every new connection of either makes the policy due
    for a look (one Redis; on Cluster the topology watch does it)."""
    if is_cluster_url(url):
        return (
            make_cluster_client(url, timeout_s=timeout_s, read_timeout_s=timeout_s + wait_s),
            make_cluster_client(url, timeout_s=timeout_s, read_timeout_s=MAX_WAIT_S + timeout_s,
                                max_connections=16),
        )
    return (
        make_client(url, timeout_s=timeout_s, read_timeout_s=timeout_s + wait_s,
                    on_connect=watch.on_connect),
        make_client(url, timeout_s=timeout_s, read_timeout_s=MAX_WAIT_S + timeout_s,
                    on_connect=watch.on_connect, max_connections=16),
    )


class RedisCore:
    """The clients, keys and script runner of one Redis broker (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        *,
        key_prefix: str = "cv",
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
        self.check_server = check_server
        #: the maxmemory-policy verdict; None: not checked (check_server=False)
        self.policy = (policy or PolicyWatch(POLICY_CHECK_S)) if check_server else None
        #: each queue's event log keeps about this many events (0: no events)
        self.events_maxlen = events_maxlen
        self._scripts = Scripts(events_maxlen)
        #: set by from_url: lets a synchronous client open its own connection (SyncEnqueuer)
        self.url: str | None = None

    #: maps connection errors to BrokerUnavailable (for the helpers beside the broker)
    unavailable = staticmethod(_unavailable)

    @property
    def scripts(self) -> Scripts:
        return self._scripts

    def qk(self, queue: str) -> QueueKeys:
        return self.keys.queue(queue)

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One script call (WAITed for replicas when it is one of WAITED)."""
        if self.wait_replicas and name in WAITED:
            return (await self._pipeline([(name, keys, args)]))[0]
        with script_errors(), _unavailable():
            return await self._scripts.run(self.client, name, keys, args)

    async def run_many(self, calls: list[batches.Call], *, partial: bool = False) -> list[Any]:
        """Script calls in as few round trips as their bytes allow (a pipeline carries at
        most PIPELINE_CALLS calls' worth of `max_call_bytes`). `partial`: a pipeline some of
        whose calls failed answers every reply, the failures as exceptions in place (the
        caller raises them, under script_errors and unavailable), instead of raising."""
        out: list[Any] = []
        for group in batches.pipelines(calls, self.max_call_bytes * batches.PIPELINE_CALLS):
            out += await self._pipeline(group, partial)
        return out

    async def _pipeline(self, calls: list[batches.Call], partial: bool = False) -> list[Any]:
        """Several script calls in one round trip (Cluster: one per node); NOSCRIPT replies
        are reloaded and re-run."""
        waited = self.wait_replicas > 0 and any(c[0] in WAITED for c in calls)
        if len(calls) == 1 and not waited:
            name, keys, args = calls[0]
            return [await self.run(name, keys, args)]
        with script_errors(), _unavailable():
            results, acks = await self._send(calls, waited)
            missing = [i for i, res in enumerate(results) if isinstance(res, NoScriptError)]
            if missing:  # restarted, flushed, or a promoted replica: load and send those again
                await self._scripts.load(self.client)
                again, more = await self._send([calls[i] for i in missing], waited)
                for i, res in zip(missing, again, strict=True):
                    results[i] = res
                acks += more
            failed = [res for res in results if isinstance(res, Exception)]
            if failed:
                if partial:
                    return results
                raise failed[0]
            self.confirmed(acks)
            return results

    async def _send(
        self, calls: Sequence[batches.Call], waited: bool,
    ) -> tuple[list[Any], list[Any]]:
        """One pipeline: the calls, then WAIT on each node written (on the same connection
        as the writes, so it covers them). Returns the calls' replies and the WAIT
        replies."""
        pipe = self.client.pipeline(transaction=False)
        for name, keys, args in calls:
            # execute_command, not .evalsha: redis-py's cluster pipeline refuses the method by
            # name (a legacy list), while the command itself routes by its keys like any
            # other: each call is on one queue's slot, the pipeline sends one batch per node
            pipe.execute_command("EVALSHA", self._scripts.sha[name], len(keys), *keys, *args)
        written = [c[1][0] for c in calls if c[1]]
        waits = self.add_waits(pipe, written) if waited else 0
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

    def add_waits(self, pipe: Any, keys: Sequence[str]) -> int:
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

    def confirmed(self, acks: Sequence[Any]) -> None:
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

    async def memory_infos(self) -> dict[str, Any]:
        """`INFO memory` of every node the client knows (one Redis: that one)."""
        if isinstance(self.client, RedisCluster):
            got = await self.client.info("memory", target_nodes=RedisCluster.ALL_NODES)
            return dict(got) if len(self.client.get_nodes()) > 1 else {"": got}
        return {"": await self.client.info("memory")}

    def topology(self) -> None:
        if isinstance(self.client, RedisCluster) and self.policy is not None:
            self.policy.topology(frozenset(
                (n.name, str(n.server_type)) for n in self.client.get_nodes()))

    async def writable(self, max_age_s: float | None = None) -> None:
        """Refuse new work while Redis may evict keys (`broker_misconfigured`); looks at the
        policy again when it is due (every `policy_check_s`, on a new connection, every
        second while wrong). `max_age_s`: look now if the last look is older."""
        watch = self.policy
        if watch is None:
            return
        self.topology()
        if watch.due(max_age_s):
            with _unavailable():
                watch.record_all(await self.memory_infos())
        if watch.error is not None:
            raise watch.error

    async def now_ms(self) -> int:
        with _unavailable():
            sec, usec = await self.client.time()
        return int(sec) * 1000 + int(usec) // 1000

    async def remember_queues(self, queues: Sequence[str]) -> None:
        """Add queues to the registry of known queues. Always sent AFTER the write that put
        jobs in them: a `forget_queue` that ran in between found the queue empty and dropped
        it, and this puts it back (so no process may cache what it registered)."""
        if queues:
            with _unavailable():
                await self.client.sadd(self.keys.queues, *queues)

    async def scan(self, match: str) -> AsyncIterator[str]:
        """SCAN for a pattern within one queue's slot: on Cluster only on the node that
        serves that slot (a SCAN of every node would read every other queue's keys too)."""
        if not isinstance(self.client, RedisCluster):
            async for key in self.client.scan_iter(match=match, count=1000):
                yield str(key)
            return
        node = self.client.get_node_from_key(match)
        async for key in self.client.scan_iter(match=match, count=1000, target_nodes=node):
            yield str(key)
