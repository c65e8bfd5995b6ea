"""Everything stored under a test's key prefix: listed, or deleted at teardown, on the shared
Redis or on a Redis Cluster (`redis+cluster://` URL)."""

from __future__ import annotations

import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from conveyor.brokers.redis.cluster import is_cluster_url, make_cluster_client
from tests.support.env import REDIS_URL

#: keys per DEL (a cluster deletes one at a time: the keys of a prefix span slots)
BATCH = 500


def _pattern(prefix: str) -> str:
    return f"{prefix}:*"


async def prefix_keys(prefix: str, url: str = REDIS_URL) -> list[str]:
    """Every key under `prefix` (on a cluster: on every primary)."""
    if is_cluster_url(url):
        cluster = make_cluster_client(url, timeout_s=5.0)
        try:
            return [k async for k in cluster.scan_iter(match=_pattern(prefix), count=1000,
                                                       target_nodes=RedisCluster.PRIMARIES)]
        finally:
            await cluster.aclose()
    client = Redis.from_url(url, decode_responses=True)
    try:
        return [k async for k in client.scan_iter(match=_pattern(prefix), count=1000)]
    finally:
        await client.aclose()


async def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key under `prefix`."""
    keys = await prefix_keys(prefix, url)
    if not keys:
        return
    if is_cluster_url(url):
        cluster = make_cluster_client(url, timeout_s=5.0)
        try:
            for key in keys:
                await cluster.delete(key)
        finally:
            await cluster.aclose()
        return
    client = Redis.from_url(url, decode_responses=True)
    try:
        for start in range(0, len(keys), BATCH):
            await client.delete(*keys[start : start + BATCH])
    finally:
        await client.aclose()


def delete_prefix_sync(prefix: str, url: str = REDIS_URL) -> None:
    """`delete_prefix` for sync code (the shared Redis only)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match=_pattern(prefix), count=1000))
        for start in range(0, len(keys), BATCH):
            client.delete(*keys[start : start + BATCH])
    finally:
        client.close()
