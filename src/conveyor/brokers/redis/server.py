"""What the Redis broker needs from the server beside its scripts: connections with bounded
waits, errors mapped to stable codes, and a watch on the eviction policy.

- Every wait is bounded by `timeout_s` (socket reads, connects, waiting for a pooled
  connection), so a stalled Redis (SIGSTOP, `CLIENT PAUSE`) fails a call in seconds; the pool
  (`WaitingPool`) makes callers wait for a free connection instead of refusing them.
- A full Redis (`maxmemory` with `noeviction`) answers writes with OOM: `broker_full`.
- An evicting policy loses jobs, so it is checked at connect, on every new connection (a
  restarted Redis may come back with another policy) and every `interval_s`; while it is
  wrong, `PolicyWatch.error` says so and the broker refuses new work.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import redis
import redis.connection
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    ClusterError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.errors import BrokerFull, BrokerMisconfigured, BrokerUnavailable

log = logging.getLogger("conveyor.broker.redis")

#: connections per pool; callers beyond it wait (up to timeout_s) for one to free
MAX_CONNECTIONS = 100
#: while the policy is wrong, how often it is looked at again (so a fix is seen quickly)
BAD_RECHECK_S = 1.0
REQUIRED_POLICY = "noeviction"
#: error replies that mean "the cluster (or a replica set) is changing: try again": a blocked
#: command force-unblocked at failover, a node still loading, a slot with no primary, a write
#: that reached a node demoted to replica, a slot migrating
TRANSIENT_REPLIES = ("UNBLOCKED", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
                     "READONLY", "MOVED", "ASK")


@contextmanager
def unavailable() -> Iterator[None]:
    """Redis errors that mean "try again later" as `BrokerUnavailable` / `BrokerFull`."""
    try:
        yield
    except OutOfMemoryError as exc:
        raise BrokerFull(
            "Redis is out of memory (maxmemory reached) and refuses writes: free memory (purge"
            " dead jobs, shorten retention) or raise maxmemory",
            details={"error": str(exc)},
        ) from exc
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
    except (ClusterError, TryAgainError, ReadOnlyError, AskError, SlotNotCoveredError) as exc:
        raise BrokerUnavailable(f"Redis Cluster is failing over or resharding: {exc}") from exc
    except ResponseError as exc:
        if str(exc).startswith(TRANSIENT_REPLIES):
            raise BrokerUnavailable(f"Redis is changing roles: {exc}") from exc
        raise
    except RedisClusterException as exc:
        # "cannot be connected", "slots are not covered": no primary for some slot. A
        # client-side cross-slot refusal is a bug of ours, and stays one.
        if "same slot" in str(exc) or "CROSSSLOT" in str(exc):
            raise
        raise BrokerUnavailable(f"Redis Cluster is unavailable: {exc}") from exc


def retry_policy() -> Retry:
    """One retry on a dropped connection (e.g. a pooled socket Redis closed when it
    restarted), never on a timeout: a stalled Redis must fail the call in one `timeout_s`.
    Safe because every script tolerates being sent twice: enqueue knows its own uid, ack
    knows its own token, the other transitions reject a stale token."""
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 1,
                 supported_errors=(RedisConnectionError,))


class WaitingPool(ConnectionPool):
    """A pool that, when all `max_connections` are in use, waits up to `timeout` seconds
    for one to be released instead of raising. redis-py's BlockingConnectionPool does the
    same but takes a condition and a timeout on every call (~50 us of CPU per command, a
    third of a single enqueue); here a free connection costs nothing extra."""

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        deadline: float | None = None
        while True:
            if self.can_get_connection():
                try:
                    conn = await super().get_connection()  # type: ignore[no-untyped-call]
                    return cast(AbstractConnection, conn)
                except MaxConnectionsError:
                    pass  # taken by another task meanwhile: wait for the next release
            loop = asyncio.get_running_loop()
            deadline = deadline if deadline is not None else loop.time() + self.timeout
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise MaxConnectionsError(
                    f"no Redis connection free within {self.timeout:g} s"
                    f" ({self.max_connections} in use)")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            # not `asyncio.wait_for`: on Python 3.11 it loses a cancel that lands as the
            # waiter is woken (gh-86296); after the timeout the loop looks once more
            try:
                await asyncio.wait({waiter}, timeout=remaining)
            except BaseException:  # cancelled: a release meant for this caller goes on
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                raise
            finally:
                waiter.cancel()  # no-op once woken; a caller gone takes no release

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        self._wake_one()


class SyncWaitingPool(redis.ConnectionPool):
    """`WaitingPool` for blocking clients (the sync enqueuer, `sync.py`): waits up to `timeout`
    seconds for a connection when all `max_connections` are in use. redis-py's
    BlockingConnectionPool takes a queue's condition and timer on every command: a lone
    `EVALSHA` of `return 1` ran at 8,400-14,700/s through it against 20,700-22,500/s through
    the plain pool (2-core host); here a free connection costs nothing extra."""

    #: longest sleep before looking again (a release may come just before the wait)
    POLL_S = 0.05

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._freed = threading.Condition()

    def get_connection(self, command_name: Any = None, *keys: Any,
                       **options: Any) -> redis.connection.Connection:
        deadline: float | None = None
        while True:
            try:
                return super().get_connection()
            except MaxConnectionsError:
                pass  # all in use: wait for a release
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + self.timeout
            if now >= deadline:
                raise MaxConnectionsError(
                    f"no Redis connection free within {self.timeout:g} s"
                    f" ({self.max_connections} in use)")
            with self._freed:
                self._freed.wait(min(deadline - now, self.POLL_S))

    def release(self, connection: Any) -> None:  # redis-py types it two ways
        super().release(connection)
        with self._freed:
            self._freed.notify()


def make_client(
    url: str, *, timeout_s: float, read_timeout_s: float | None = None,
    on_connect: Callable[[AbstractConnection], Awaitable[None]] | None = None,
    max_connections: int = MAX_CONNECTIONS,
) -> Redis:
    """An asyncio client whose every wait is bounded; `read_timeout_s` (default `timeout_s`)
    must outlast the longest blocking command sent on it."""
    pool = WaitingPool.from_url(
        url, max_connections=max_connections, timeout=timeout_s, decode_responses=True,
        encoding_errors="replace",  # a stored byte that is not UTF-8 never stops a read
        socket_timeout=read_timeout_s or timeout_s, socket_connect_timeout=timeout_s,
        health_check_interval=30, retry=retry_policy(), redis_connect_func=on_connect,
    )
    return Redis.from_pool(pool)


class PolicyWatch:
    """The last known `maxmemory-policy` verdict and when to look again. Shared by the async
    broker and the sync enqueuer; `due()` hands the next look to one caller at a time."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.error: BrokerMisconfigured | None = None
        self._next = 0.0  # monotonic time of the next look
        self._last = 0.0  # monotonic time of the last look
        self._nodes: frozenset[tuple[str, str]] = frozenset()
        #: new connections made so far: a call that saw it change may have run on a server
        #: no one has looked at yet (see `RedisBroker.wait_and_fetch`)
        self.connects = 0

    def due(self, max_age_s: float | None = None) -> bool:
        """True if the caller should read the policy now (and report it with `record`)."""
        now = time.monotonic()
        when = self._next if max_age_s is None else min(self._next, self._last + max_age_s)
        if now < when:
            return False
        self._next = now + BAD_RECHECK_S  # the others use the last verdict meanwhile
        self._last = now
        return True

    def reconnected(self) -> None:
        """A new connection: the server may be another one (restarted, failed over)."""
        self._next = 0.0
        self.connects += 1

    async def on_connect(self, conn: AbstractConnection) -> None:
        """`redis_connect_func` of the pools: the usual handshake, then a look is due."""
        await conn.on_connect()
        self.reconnected()

    def topology(self, nodes: frozenset[tuple[str, str]]) -> None:
        """The nodes (name, role) a cluster client knows: a change (failover, a node added)
        makes a look due, since a promoted replica may come with another policy."""
        if nodes != self._nodes:
            self._nodes = nodes
            self._next = 0.0

    def record_all(self, infos: Mapping[str, Mapping[str, Any]]) -> BrokerMisconfigured | None:
        """Take `INFO memory` of every node (Cluster: primaries and replicas): the first
        node with a wrong policy is the verdict."""
        for node, info in sorted(infos.items()):
            if str(info.get("maxmemory_policy", REQUIRED_POLICY)) != REQUIRED_POLICY:
                return self.record(info, node)
        return self.record({})

    def record(self, memory_info: Mapping[str, Any],
               node: str | None = None) -> BrokerMisconfigured | None:
        """Take the answer of `INFO memory`; returns (and keeps) the error, if any."""
        policy = str(memory_info.get("maxmemory_policy", REQUIRED_POLICY))
        now = time.monotonic()
        was = self.error
        if policy == REQUIRED_POLICY:
            self.error = None
            self._next = now + self.interval_s
            if was is not None:
                log.warning("redis_policy_fixed", extra={"maxmemory_policy": policy})
            return None
        where = f" on node {node}" if node else ""
        self.error = BrokerMisconfigured(
            f"Redis maxmemory-policy is {policy!r}{where}: Conveyor requires"
            f" {REQUIRED_POLICY!r}, because an evicted key is a lost job (CONFIG SET"
            " maxmemory-policy noeviction, on every node); no new work is taken until it is"
            " fixed",
            details={"maxmemory_policy": policy, **({"node": node} if node else {})},
        )
        self._next = now + min(BAD_RECHECK_S, self.interval_s)
        if was is None:
            log.error("redis_policy_evicting", extra={"maxmemory_policy": policy,
                                                      "required": REQUIRED_POLICY})
        return self.error


async def check_role(client: Redis) -> None:
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


async def warn_without_aof(client: Redis | RedisCluster) -> None:
    """Log every node (of a cluster: every node the client knows) that does not persist
    each write (AOF off): a restart or a failover to it may lose jobs."""
    if isinstance(client, RedisCluster):
        infos = await client.info("persistence", target_nodes=RedisCluster.ALL_NODES)
        persistence = dict(infos) if len(client.get_nodes()) > 1 else {"": infos}
    else:
        persistence = {"": await client.info("persistence")}
    for node, info in sorted(persistence.items()):
        if not int(info.get("aof_enabled", 0)):
            log.warning(
                "redis_aof_disabled",
                extra={"node": node or None,
                       "hint": "enable appendonly yes (on every node) so a restart or a"
                               " failover to this node loses no job"},
            )


async def cluster_ok(client: RedisCluster) -> None:
    """Ready only while every primary says every slot is served (`cluster_state:ok`)."""
    got = await client.execute_command("CLUSTER INFO", target_nodes=RedisCluster.PRIMARIES)
    infos = got.values() if isinstance(got, dict) and "cluster_state" not in got else [got]
    for info in infos:
        text = info if isinstance(info, str) else str(info.get("cluster_state", ""))
        if "ok" not in text.split("cluster_state:", 1)[-1][:3] and text != "ok":
            raise BrokerUnavailable("Redis Cluster is not serving every slot"
                                    " (cluster_state is not ok): a failover is under way")
