"""A synchronous enqueue path for the sync client: the same scripts and the same plan as
`RedisBroker.enqueue`, sent over a blocking redis-py connection.

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

from conveyor.brokers.redis.broker import RedisBroker
from conveyor.jobs import EnqueueResult, JobSpec


class SyncEnqueuer:
    def __init__(self, broker: RedisBroker, url: str) -> None:
        self._broker = broker
        timeout = broker.timeout_s  # the async broker's bounded waits, and its retry rule
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=100, timeout=timeout, decode_responses=True,
            encoding_errors="replace",
            socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1,
                        supported_errors=(RedisConnectionError,)),
        )
        self._client = redis.Redis.from_pool(pool)

    def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        plan = self._broker.enqueue_plan(specs)
        with self._broker.unavailable():
            self._check_policy()
            # the registry AFTER the scripts, in the same round trip: see remember_queues
            scripts, registry = self._broker.scripts, self._broker.keys.queues
            pipe = self._client.pipeline(transaction=False)
            for name, keys, args in plan.calls:
                pipe.evalsha(scripts.sha[name], len(keys), *keys, *args)
            pipe.sadd(registry, *plan.queues)
            replies: list[Any] = pipe.execute(raise_on_error=False)[: len(plan.calls)]
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            for i in missing:
                replies[i] = self._run(*plan.calls[i])
            if missing:
                self._client.sadd(registry, *plan.queues)
            for r in replies:
                if isinstance(r, Exception):
                    raise r
            return plan.results(replies)

    def _check_policy(self) -> None:
        """The async broker's policy watch, looked at over this connection when due."""
        watch = self._broker.policy
        if watch is None:
            return
        if watch.due():
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
        self._client.close()
