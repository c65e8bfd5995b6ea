"""A synchronous enqueue path for the sync client: the same scripts and the same plan as
`RedisBroker.enqueue`, sent over a blocking redis-py connection.

Why: the sync client otherwise drives the async client on a loop thread, and the hop to
that thread and back costs more than the round trip itself; a sync producer (a web view, a
script) that enqueues one job at a time is the common case.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.retry import Retry

from conveyor.brokers.redis.broker import MAX_WAIT_S, RedisBroker
from conveyor.jobs import EnqueueResult, JobSpec


class SyncEnqueuer:
    def __init__(self, broker: RedisBroker, url: str) -> None:
        self._broker = broker
        self._client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=MAX_WAIT_S * 2,
            socket_connect_timeout=5.0, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            retry_on_error=[RedisConnectionError],
        )
        self._known_queues: set[str] = set()
        self._lock = threading.Lock()  # the known-queues set; redis-py's pool is thread-safe

    def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        plan = self._broker.enqueue_plan(specs)
        with self._broker.unavailable():
            with self._lock:
                new = [q for q in plan.queues if q not in self._known_queues]
            if new:
                self._client.sadd(self._broker.keys.queues, *new)
                with self._lock:
                    self._known_queues.update(new)
            return plan.results([self._run(name, keys, args) for name, keys, args in plan.calls])

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        scripts = self._broker.scripts
        try:
            return self._client.evalsha(scripts.sha[name], len(keys), *keys, *args)
        except NoScriptError:
            self._client.script_load(scripts.source[name])
            return self._client.evalsha(scripts.sha[name], len(keys), *keys, *args)

    def close(self) -> None:
        self._client.close()
