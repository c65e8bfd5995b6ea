"""What one job's transitions cost in the broker, configurations interleaved finely: per
round, each configuration enqueues, fetches and acks a batch of jobs on its own key prefix
(events on or off; this tree's Lua scripts, or another tree's with `--before DIR`), timed per
configuration. Batches alternate every few tens of milliseconds, so a load that comes and
goes on a shared machine hurts every configuration alike (unlike whole-process runs).

    python -m bench.transitions [--redis URL | --own-servers] [--jobs 20000] [--batch 200]
        [--runs 3] [--before DIR] [--sqlite]

`--before DIR`: a tree made by `git archive <commit> src | tar -x -C /tmp/x` (DIR
/tmp/x/src/conveyor/brokers/redis/lua). `--sqlite`: the embedded broker instead (a file in
a temporary directory; events on / off only). Reports µs per job (enqueue + fetch + ack, one
client, no worker; wall time and this process's CPU time) as the median of --runs runs,
and events' share of it. `--own-servers`
starts one private `redis-server` per configuration (stopped at the end) and also reports
the server's own CPU time per job (INFO cpu, user + sys): CPU, not wall time, so a busy
machine's preemption does not count, and nothing else runs on those servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from conveyor.brokers.base import AckItem, Broker
from conveyor.brokers.redis import scripts
from conveyor.brokers.redis.broker import RedisBroker
from conveyor.brokers.sqlite.broker import SqliteBroker
from conveyor.ids import new_job_id
from conveyor.jobs import JobSpec

QUEUE = "bench"
DEFAULT_MAXLEN = 100_000


@contextlib.contextmanager
def lua_from(lua_dir: str | None) -> Iterator[None]:
    """Scripts built meanwhile read their Lua from `lua_dir` (None: this tree's)."""
    if lua_dir is None:
        yield
        return
    read = scripts._read
    scripts._read = lambda name: (Path(lua_dir) / f"{name}.lua").read_text()
    try:
        yield
    finally:
        scripts._read = read


@contextlib.contextmanager
def own_server() -> Iterator[str]:
    """A private redis-server (no persistence) on a free port; its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("--own-servers needs redis-server on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def server_cpu(broker: Broker) -> float:
    """The Redis server's CPU seconds so far (0 for SQLite)."""
    if not isinstance(broker, RedisBroker):
        return 0.0
    info = await broker.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def make(url: str, maxlen: int, lua_dir: str | None, sqlite_dir: str | None) -> Broker:
    if sqlite_dir is not None:
        broker: Broker = SqliteBroker.from_url(
            f"sqlite:///{sqlite_dir}/{uuid.uuid4().hex[:8]}.db", events_maxlen=maxlen)
    else:
        with lua_from(lua_dir):
            broker = RedisBroker.from_url(url, key_prefix="cvbench-" + uuid.uuid4().hex[:8],
                                          events_maxlen=maxlen, check_server=False)
    await broker.connect()
    return broker


async def drop(broker: Broker) -> None:
    if isinstance(broker, RedisBroker):
        keys = [k async for k in broker.client.scan_iter(match=broker.keys.prefix + ":*",
                                                         count=5000)]
        for i in range(0, len(keys), 5000):
            await broker.client.delete(*keys[i : i + 5000])
    await broker.close()


async def one_batch(broker: Broker, n: int) -> tuple[float, float]:
    """(wall, this process's CPU) seconds for n jobs enqueued, fetched and acked."""
    specs = [JobSpec(new_job_id(QUEUE), "fake", QUEUE, "{}") for _ in range(n)]
    t = time.perf_counter()
    cpu = time.process_time()
    await broker.enqueue(specs)
    left = n
    while left:
        batch = await broker.fetch(QUEUE, min(left, 100), "bench-worker", 60_000)
        await broker.ack([AckItem(d.job_id, d.token) for d in batch.deliveries])
        left -= len(batch.deliveries)
    return time.perf_counter() - t, time.process_time() - cpu


async def one_run(urls: dict[str, str], n: int, batch: int,
                  configs: dict[str, tuple[int, str | None]], sqlite_dir: str | None
                  ) -> dict[str, tuple[float, float, float]]:
    """Per configuration, µs per job: (wall, client CPU, server CPU)."""
    brokers = {name: await make(urls[name], maxlen, lua, sqlite_dir)
               for name, (maxlen, lua) in configs.items()}
    spent = dict.fromkeys(configs, 0.0)
    client_cpu = dict.fromkeys(configs, 0.0)
    cpu = {name: -await server_cpu(b) for name, b in brokers.items()}
    try:
        for _ in range(n // batch):
            for name, broker in brokers.items():
                wall, used = await one_batch(broker, batch)
                spent[name] += wall
                client_cpu[name] += used
        for name, b in brokers.items():
            cpu[name] += await server_cpu(b)
    finally:
        for broker in brokers.values():
            await drop(broker)
    done = n // batch * batch
    return {name: (spent[name] / done * 1e6, client_cpu[name] / done * 1e6,
                   cpu[name] / done * 1e6) for name in configs}


async def main_async(a: argparse.Namespace) -> None:
    configs: dict[str, tuple[int, str | None]] = {"on": (DEFAULT_MAXLEN, None), "off": (0, None)}
    if a.before and not a.sqlite:
        configs = {"before on": (DEFAULT_MAXLEN, a.before), "before off": (0, a.before),
                   **configs}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(own_server()) if a.own_servers else a.redis
                for name in configs}
        for r in range(a.runs):
            res = await one_run(urls, a.jobs, a.batch, configs, tmp if a.sqlite else None)
            for name, three in res.items():
                results[name].append(three)
            print(f"run {r + 1}: " + ", ".join(
                f"{k} {w:.1f} (client CPU {u:.1f}, server CPU {c:.1f})"
                for k, (w, u, c) in res.items()) + " µs/job", flush=True)
    for i, what in enumerate(("wall", "client CPU", "server CPU")):
        med = {name: statistics.median(x[i] for x in v) for name, v in results.items()}
        for name, per_job in med.items():
            off = med.get(name.removesuffix("on") + "off") if name.endswith("on") else None
            rel = (f"  (events: {per_job - off:+.1f} µs/job, "
                   f"{(per_job / off - 1) * 100:+.1f}%)" if off else "")
            vals = [x[i] for x in results[name]]
            print(f"{what:10s} {name:10s} median {per_job:.1f} µs/job [{min(vals):.1f}-"
                  f"{max(vals):.1f}]{rel}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--before", help="another tree's lua/ directory (Redis only)")
    p.add_argument("--sqlite", action="store_true", help="the embedded SQLite broker")
    p.add_argument("--own-servers", action="store_true",
                   help="one private redis-server per configuration (server CPU per job)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
