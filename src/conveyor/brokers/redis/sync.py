"""A synchronous enqueue path for the sync client: the same scripts and the same plan
(enqueue.py) as `RedisBroker.enqueue`, sent over a blocking redis-py connection.

Why: the sync client otherwise drives the async client on a loop thread, and the hop to
that thread and back costs more than the round trip itself; a sync producer (a web view, a
script) that enqueues one job at a time is the common case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.retry import Retry

from conveyor.brokers.redis.cluster import is_cluster_url, make_sync_cluster_client
from conveyor.brokers.redis.core import RedisCore, script_errors
from conveyor.brokers.redis.enqueue import enqueue_plan
from conveyor.brokers.redis.server import SyncWaitingPool
from conveyor.errors import BrokerUnavailable, CorruptJob
from conveyor.jobs import EnqueueResult, JobSpec


class SyncEnqueuer:
    def __init__(self, broker: RedisCore, url: str) -> None:
        self._broker = broker
        timeout = broker.timeout_s  # the async broker's bounded waits, and its retry rule
        # a write that WAITs for replicas may answer the WAIT's timeout later
        read_s = timeout + (broker.wait_timeout_ms / 1000 if broker.wait_replicas else 0.0)
        self._cluster: redis.RedisCluster | None = None
        if is_cluster_url(url):
            self._cluster = make_sync_cluster_client(url, timeout_s=timeout,
                                                     read_timeout_s=read_s)
            return
        pool = SyncWaitingPool.from_url(
            url, max_connections=100, timeout=timeout, decode_responses=True,
            encoding_errors="replace",
            socket_timeout=read_s, socket_connect_timeout=timeout, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1,
                        supported_errors=(RedisConnectionError,)),
        )
        self._client = redis.Redis.from_pool(pool)

    def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        if self._cluster is not None:
            return self._enqueue_cluster(self._cluster, specs)
        plan = enqueue_plan(self._broker, specs)
        with script_errors(), self._broker.unavailable():
            self._check_policy()
            waits = self._broker.wait_replicas
            if len(plan.calls) == 1 and not waits:  # the common case: one EVALSHA, no pipeline
                replies = [self._run(*plan.calls[0])]
                acks: list[Any] = []
            else:
                replies, acks = self._pipelined(plan.calls, waits)
            # the registry AFTER the scripts, for the queues they found new: see enqueue.lua
            fresh = plan.fresh_queues(replies)
            if fresh:
                self._client.sadd(self._broker.keys.queues, *fresh)
            failed = [r for r in replies if isinstance(r, Exception)]
            if failed:
                raise failed[0]
            self._broker.confirmed(acks)
            return plan.results(replies)

    def _pipelined(self, calls: Sequence[Any], waits: int) -> tuple[list[Any], list[Any]]:
        """The calls in one pipeline, then WAIT (over the same connection): their replies
        (failures in place) and the WAIT replies; a NOSCRIPT call is loaded and run again."""
        scripts = self._broker.scripts
        pipe = self._client.pipeline(transaction=False)
        for name, keys, args in calls:
            pipe.evalsha(scripts.sha[name], len(keys), *keys, *args)
        if waits:
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", waits, self._broker.wait_timeout_ms)
        everything: list[Any] = pipe.execute(raise_on_error=False)
        replies = everything[: len(calls)]
        acks = everything[len(calls):]
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        for i in missing:
            replies[i] = self._run(*calls[i])
        if missing and waits:
            acks.append(self._client.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", waits, self._broker.wait_timeout_ms))
        return replies, acks

    def _enqueue_cluster(
        self, client: redis.RedisCluster, specs: Sequence[JobSpec],
    ) -> list[EnqueueResult]:
        """Cluster: each script call on its own slot (redis-py routes it and follows MOVED /
        ASK), then the registry once every call succeeded, then WAIT per node written. A
        failure part way names the jobs stored (as the async broker does)."""
        plan = enqueue_plan(self._broker, specs)
        scripts = self._broker.scripts
        replies: list[Any] = []
        failed: BrokerUnavailable | None = None
        corrupt: CorruptJob | None = None
        with self._broker.unavailable():
            self._check_policy()
        for name, keys, args in plan.calls:
            try:
                with script_errors(), self._broker.unavailable():
                    reply, acks = self._cluster_call(client, name, keys, args)
                    if isinstance(reply, NoScriptError):
                        client.script_load(scripts.source[name])  # every primary
                        reply, acks = self._cluster_call(client, name, keys, args)
                    if isinstance(reply, Exception):
                        raise reply
                    self._broker.confirmed(acks)
                    replies.append(reply)
            except BrokerUnavailable as exc:
                failed = exc
                replies.append(None)
            except CorruptJob as exc:  # this queue refused; the others go on (as on async)
                corrupt = corrupt or exc
                replies.append(None)
        stored = [i for i, r in enumerate(replies) if r is not None]
        with self._broker.unavailable():
            names = plan.fresh_queues(replies)
            if names:
                client.sadd(self._broker.keys.queues, *names)
        if corrupt is not None:
            raise corrupt
        if failed is None:
            return plan.results(replies)
        raise plan.partial(stored, replies, failed)

    def _cluster_call(
        self, client: redis.RedisCluster, name: str, keys: list[str], args: list[Any],
    ) -> tuple[Any, list[Any]]:
        """One script call, then WAIT on its node over the same connection (one pipeline)."""
        waits = self._broker.wait_replicas
        pipe = client.pipeline()  # type: ignore[no-untyped-call]
        # execute_command: see RedisCore._send (the cluster pipeline refuses `.evalsha`)
        pipe.execute_command(
            "EVALSHA", self._broker.scripts.sha[name], len(keys), *keys, *args)
        if waits:
            node = client.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]
            pipe.execute_command("WAIT", waits, self._broker.wait_timeout_ms, target_nodes=node)
        got: list[Any] = pipe.execute(raise_on_error=False)
        return got[0], got[1:]

    def _check_policy(self) -> None:
        """The async broker's policy watch, looked at over this connection when due."""
        watch = self._broker.policy
        if watch is None:
            return
        if watch.due():
            if self._cluster is not None:
                got = self._cluster.info("memory", target_nodes=redis.RedisCluster.ALL_NODES)
                many = len(self._cluster.get_nodes()) > 1  # type: ignore[no-untyped-call]
                watch.record_all(got if many else {"": got})
            else:
                watch.record(self._client.info("memory"))
        if watch.error is not None:
            raise watch.error

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        scripts = self._broker.scripts
        try:
            return self._client.evalsha(scripts.sha[name], len(keys), *keys, *args)
        except NoScriptError:
            self._client.script_load(scripts.source[name])
            return self._client.evalsha(scripts.sha[name], len(keys), *keys, *args)

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
        else:
            self._client.close()
