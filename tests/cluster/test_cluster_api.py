"""The HTTP API over a Redis Cluster (issue 14): every listing across queues on different
primaries answers (they were 500s: MGET and a BLPOP across slots, MOVED), a mixed-queue batch
is stored, a redrive into a queue on another primary works, and while a slot has no primary
the API says 503 `broker_unavailable` and `/readyz` is not ready, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster

import conveyor.handlers  # noqa: F401  (registers the built-in `fake` type)
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.settings import Settings
from conveyor.web import create_app
from tests.support.asgi import serve
from tests.support.cluster import (
    LocalCluster,
    allow_failover,
    kill_primary_of,
    queues_on_each_primary,
)
from tests.support.env import new_prefix
from tests.support.keys import delete_prefix


def _spread(client: AsyncConveyor, stem: str) -> list[str]:
    broker = client.broker
    assert isinstance(broker, RedisBroker) and isinstance(broker.client, RedisCluster)
    owner = {s: n[0].name for s, n in broker.client.nodes_manager.slots_cache.items()}
    return queues_on_each_primary(owner, stem)


async def _serve(url: str, prefix: str) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                            AsyncConveyor]]:
    client = AsyncConveyor.from_url(url, key_prefix=prefix)
    await client.connect()
    app = create_app(client, Settings(broker_url=url, key_prefix=prefix))
    try:
        async with serve(app) as http:
            yield http, client
    finally:
        await client.close()


@pytest.fixture
async def api(redis_cluster: LocalCluster) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                                   AsyncConveyor]]:
    prefix = new_prefix()
    try:
        async for pair in _serve(redis_cluster.url, prefix):
            yield pair
    finally:
        await delete_prefix(prefix, redis_cluster.url)


async def test_every_listing_and_a_mixed_batch_over_three_primaries(
    api: tuple[httpx.AsyncClient, AsyncConveyor],
) -> None:
    http, client = api
    q1, q2, q3 = _spread(client, "api")
    jobs: list[dict[str, Any]] = [{"type": "fake", "payload": {}, "queue": q}
                                  for q in (q1, q2, q3, q1)]
    r = await http.post("/v1/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    ids = [j["id"] for j in r.json()["jobs"]]
    assert len(ids) == 4
    assert (await http.get("/readyz")).status_code == 200

    r = await http.get("/v1/queues")
    assert r.status_code == 200, r.text
    assert {q["name"] for q in r.json()["items"]} >= {q1, q2, q3}
    r = await http.get("/v1/jobs", params={"limit": 50})
    assert r.status_code == 200, r.text
    assert {j["id"] for j in r.json()["items"]} == set(ids)
    assert (await http.get("/v1/dlq")).status_code == 200
    assert (await http.get("/v1/workers")).status_code == 200
    r = await http.post(f"/v1/queues/{q2}/pause")
    assert r.status_code in (200, 204), r.text


async def test_a_slot_without_primary_is_503_and_not_ready_never_500(
    own_cluster: LocalCluster,
) -> None:
    prefix = new_prefix()
    async for http, client in _serve(own_cluster.url, prefix):
        q, _, _ = _spread(client, "down")
        r = await http.post("/v1/jobs", json={"type": "fake", "payload": {}, "queue": q})
        assert r.status_code == 201, r.text
        broker = client.broker
        assert isinstance(broker, RedisBroker)
        replica = await kill_primary_of(own_cluster, broker, q)
        statuses: list[int] = []
        ready: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(statuses) == 3:  # three answers without a primary, then the replica
                await allow_failover(replica)
            r = await http.post("/v1/jobs", json={"type": "fake", "payload": {}, "queue": q})
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "broker_unavailable", r.text
            ready.append((await http.get("/readyz")).status_code)
            if r.status_code == 201 and ready[-1] == 200:
                break
            await asyncio.sleep(0.2)
        assert 500 not in statuses and all(s in (201, 503) for s in statuses), statuses
        assert statuses[:3] == [503] * 3 and ready[:3] == [503] * 3, (statuses, ready)
        assert statuses[-1] == 201 and ready[-1] == 200, "not ridden out within 30 s"
