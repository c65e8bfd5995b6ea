"""A local Redis Cluster for the tests: `scripts/redis-cluster` (3 primaries + 3 replicas from
`redis-server`, on free ports, in a temp dir), or the one CONVEYOR_TEST_CLUSTER names
(`host:port,host:port,...`: e.g. the one `.ci/run` started).

Queue names spread over the primaries on purpose: `queues_on_each_primary` picks names whose
hash slots are served by different primaries, so a test over them crosses nodes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tests.support.typed import redis_command

if TYPE_CHECKING:
    from conveyor.brokers.redis import RedisBroker

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "redis-cluster"
ENV = "CONVEYOR_TEST_CLUSTER"


@dataclass(frozen=True, slots=True)
class LocalCluster:
    seeds: str  # "127.0.0.1:p1,127.0.0.1:p2,..."
    directory: str | None  # None: not ours (CONVEYOR_TEST_CLUSTER), never stopped here

    @property
    def url(self) -> str:
        return f"redis+cluster://{self.seeds}/"

    @property
    def ports(self) -> list[int]:
        return [int(s.rsplit(":", 1)[1]) for s in self.seeds.split(",")]


def unavailable_reason() -> str | None:
    """Why no cluster can be had here (None: one can)."""
    if os.environ.get(ENV):
        return None
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return f"no redis-server / redis-cli on PATH and {ENV} is unset"
    return None


def start(*, own: bool = False) -> LocalCluster:
    """The session's cluster (CONVEYOR_TEST_CLUSTER if set), or with `own` always a new one."""
    given = os.environ.get(ENV)
    if given and not own:
        return LocalCluster(given.strip(), None)
    out = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return LocalCluster(fields["seeds"], fields["dir"])


def stop(cluster: LocalCluster) -> None:
    if cluster.directory is not None:
        subprocess.run([str(SCRIPT), "down", cluster.directory], timeout=60, check=False)


def key_slot(key: str) -> int:
    """Redis Cluster's slot of a key (CRC16 of its hash tag, mod 16384)."""
    from redis.crc import key_slot as slot

    return int(slot(key.encode()))


def queues_on_each_primary(slot_owner: dict[int, str], stem: str, count: int = 3) -> list[str]:
    """`count` queue names `<stem>-<n>`, each served by a different primary
    (`slot_owner`: slot -> primary name)."""
    picked: dict[str, str] = {}
    n = 0
    while len(picked) < count and n < 10_000:
        name = f"{stem}-{n}"
        owner = slot_owner[key_slot(f"{{{name}}}")]
        picked.setdefault(owner, name)
        n += 1
    return list(picked.values())


def pid_of(cluster: LocalCluster, port: int | str) -> int:
    """The pid of the node on `port` (clusters started by scripts/redis-cluster only; a
    node's port is `int | str` in redis-py)."""
    assert cluster.directory is not None
    base = Path(cluster.directory)
    ports = [int(p) for p in (base / "ports").read_text().split()]
    pids = [int(p) for p in (base / "pids").read_text().split()]
    return pids[ports.index(int(port))]


async def kill_primary_of(cluster: LocalCluster, broker: RedisBroker, queue: str) -> Redis:
    """SIGKILL the primary serving `queue`, its replica told not to take over yet (so the
    slot stays without a primary until `allow_failover`). Returns that replica."""
    assert isinstance(broker.client, RedisCluster)
    victim = broker.client.get_node_from_key(broker.keys.queue(queue).queued)
    assert victim is not None
    replica = await replica_of(cluster, victim.port)
    await replica.config_set("cluster-replica-no-failover", "yes")
    os.kill(pid_of(cluster, victim.port), signal.SIGKILL)
    return replica


async def allow_failover(replica: Redis) -> None:
    try:
        await replica.config_set("cluster-replica-no-failover", "no")
    finally:
        await replica.aclose()


async def replica_of(cluster: LocalCluster, primary_port: int | str) -> Redis:
    for port in cluster.ports:
        node = Redis(port=port, decode_responses=True)
        role = await redis_command(node, "ROLE")
        if role[0] == "slave" and int(role[2]) == int(primary_port):
            return node
        await node.aclose()
    raise AssertionError(f"no replica of {primary_port}")


def restart_node(cluster: LocalCluster, port: int | str) -> None:
    """Start a killed node again on its own files (scripts/redis-cluster restart)."""
    assert cluster.directory is not None
    subprocess.run([str(SCRIPT), "restart", cluster.directory, str(port)], timeout=60,
                   check=True)
