"""Redis Cluster: the `redis+cluster://` / `rediss+cluster://` URLs and the clients they make.

`redis+cluster://[user:password@]host:port[,host:port...]/[?options]` names some seed nodes of
one cluster (the client discovers the rest); the `?` options are those of `redis://`. Every
key of a queue is in the queue's slot (`{queue}` hash tag, see keys.py), so every script runs
on one node; the calls that span queues are sent per queue (per slot), never as one
cross-slot command.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import parse_url
from redis.cluster import ClusterNode as SyncClusterNode

from conveyor.errors import ValidationError

#: what the broker talks to: one Redis (or a primary with replicas) or a cluster
Client = Redis | RedisCluster
SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379
#: connections per node of one client (the pools of a cluster client are per node)
MAX_CONNECTIONS = 100


class GatedRedisCluster(RedisCluster):
    """A cluster client whose calls wait for a free connection instead of failing.

    redis-py's cluster pools raise `MaxConnectionsError` the moment a node's
    `max_connections` are all in use (a single Redis's pool here waits for one instead), so a
    burst of concurrent calls (an API under load, many waiters) would fail as unavailable.
    At most `max_connections` commands or pipelines are in flight per client: each uses at
    most one connection per node, so no node's pool can run dry."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS, **kw: Any) -> None:
        super().__init__(max_connections=max_connections, **kw)
        self.gate = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.gate:
            return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused there, as documented
        # redis-py declares an abstract attribute its own ClusterPipeline sets at runtime
        return _GatedPipeline(self, transaction)  # type: ignore[abstract]


class _GatedPipeline(ClusterPipeline):
    def __init__(self, client: GatedRedisCluster, transaction: Any | None = None) -> None:
        super().__init__(client, transaction)
        self._gate = client.gate

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        async with self._gate:
            return await super().execute(raise_on_error, allow_redirections)


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES if "://" in url else False


def _bad(url: str, why: str) -> ValidationError:
    return ValidationError(f"invalid Redis Cluster URL: {why}", details={"field": "broker_url"})


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The seed nodes and the connection options of a cluster URL."""
    scheme, _, rest = url.partition("://")
    plain = SCHEMES.get(scheme.lower())
    if plain is None:
        raise _bad(url, "expected redis+cluster:// or rediss+cluster://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:  # no slash before the options: redis+cluster://h:p?x=y
        netloc, _, query = netloc.partition("?")
    if path not in ("", "0"):
        raise _bad(url, "a cluster has only database 0 (end the URL with / or /0)")
    auth, _, hosts = netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for part in hosts.split(","):
        part = part.strip()
        if not part:
            continue
        split = urlsplit(f"//{part}")
        try:
            port = split.port or DEFAULT_PORT
        except ValueError as exc:
            raise _bad(url, f"bad port in {part!r}") from exc
        if not split.hostname:
            raise _bad(url, f"no host in {part!r}")
        nodes.append((split.hostname, port))
    if not nodes:
        raise _bad(url, "no seed node (redis+cluster://host:port[,host:port...]/)")
    first = f"{nodes[0][0]}:{nodes[0][1]}"
    try:
        kwargs: dict[str, Any] = dict(parse_url(
            f"redis://{auth + '@' if auth else ''}{first}/0{'?' + query if query else ''}"))
    except ValueError as exc:
        raise _bad(url, str(exc)) from exc
    for name in ("host", "port", "db", "connection_class", "path"):
        kwargs.pop(name, None)
    if plain == "rediss":
        kwargs["ssl"] = True
    return nodes, kwargs


def make_cluster_client(
    url: str, *, timeout_s: float, read_timeout_s: float | None = None,
    max_connections: int = MAX_CONNECTIONS,
) -> RedisCluster:
    """An asyncio cluster client whose waits are bounded like `server.make_client`'s.
    MOVED / ASK are followed by redis-py; TRYAGAIN, CLUSTERDOWN and dropped connections are
    retried a few times (its cluster retry) before the call fails as unavailable."""
    nodes, kwargs = parse_cluster_url(url)
    opts: dict[str, Any] = {
        "decode_responses": True, "encoding_errors": "replace",
        "socket_timeout": read_timeout_s or timeout_s, "socket_connect_timeout": timeout_s,
        "max_connections": max_connections, "health_check_interval": 30,
    }
    opts.update(kwargs)
    try:
        return GatedRedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], **opts)
    except TypeError as exc:
        raise _bad(url, f"unsupported option: {exc}") from exc


def make_sync_cluster_client(
    url: str, *, timeout_s: float, read_timeout_s: float | None = None,
) -> redis.RedisCluster:
    """The blocking twin, for the sync enqueuer."""
    nodes, kwargs = parse_cluster_url(url)
    opts: dict[str, Any] = {
        "decode_responses": True, "encoding_errors": "replace",
        "socket_timeout": read_timeout_s or timeout_s,
        "socket_connect_timeout": timeout_s, "health_check_interval": 30,
    }
    opts.update(kwargs)
    try:
        return redis.RedisCluster(
            startup_nodes=[SyncClusterNode(h, p) for h, p in nodes],  # type: ignore[no-untyped-call]
            **opts)
    except TypeError as exc:
        raise _bad(url, f"unsupported option: {exc}") from exc
