"""The side of the comparison that runs inside each system's virtualenv (stdlib only).

    python -m bench.peers NAME version | enqueue | timed | worker   (see `main`)

Adapters subclass `AsyncAdapter` or `SyncAdapter`; their job function calls `record(payload)`
(a sync job) or `await arecord(payload)` (an async one): that first runs the job's body if the
payload names one (`"b"`: "rtt", one pipelined SET + GET to Redis over the job's own
connection, made with the stdlib so every system pays the same; "sleep", 10 ms of I/O wait),
then writes what the runner measures to the file named by BENCH_OUT, with no Redis call of
its own: "first"/"last" stamps when the first and the BENCH_N-th counted job start, "ready"
for a warm-up job, and one lateness line per timed job (start - (enqueue time + delay), ms).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUE = "bench"


class Recorder:
    def __init__(self) -> None:
        self.out = os.environ.get("BENCH_OUT", "")
        self.n = int(os.environ.get("BENCH_N", "0"))
        self.count = 0
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        if self.out:
            with open(self.out, "a") as f:
                f.write(line + "\n")

    def record(self, payload: dict[str, Any]) -> None:
        now = time.time()
        if "t" in payload:
            late_ms = (now - payload["t"] - payload.get("d", 0.0)) * 1000
            self.write(f"{payload['g']} {late_ms:.3f}")
        elif "w" in payload:
            self.write("ready")
        else:
            with self.lock:
                self.count += 1
                count = self.count
            if count == 1:
                self.write(f"first {now:.6f}")
            if count == self.n:
                self.write(f"last {now:.6f}")


_recorder = Recorder()

#: the job bodies of the "real job" workloads (payload key "b"); None: a no-op job
BODIES = ("rtt", "sleep")
SLEEP_S = 0.010
_URL = urlsplit(URL)
_ADDR = (_URL.hostname or "127.0.0.1", _URL.port or 6379)


def _resp(*parts: str) -> bytes:
    return f"*{len(parts)}\r\n".encode() + b"".join(
        f"${len(p.encode())}\r\n{p}\r\n".encode() for p in parts)


_SELECT = _resp("SELECT", (_URL.path or "/0").lstrip("/") or "0")
#: one round trip: two commands pipelined, and the exact bytes they answer
_RTT = _resp("SET", "bench:body", "1") + _resp("GET", "bench:body")
_RTT_REPLY = b"+OK\r\n$1\r\n1\r\n"
_local = threading.local()
_pools: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}


def _sync_conn() -> socket.socket:
    sock: socket.socket | None = getattr(_local, "sock", None)
    if sock is None:
        sock = socket.create_connection(_ADDR)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_SELECT)
        _read_sync(sock, b"+OK\r\n")
        _local.sock = sock
    return sock


def _read_sync(sock: socket.socket, expected: bytes) -> None:
    got = b""
    while len(got) < len(expected):
        chunk = sock.recv(len(expected) - len(got))
        if not chunk:
            raise ConnectionError("redis closed the connection")
        got += chunk
    if got != expected:
        raise RuntimeError(f"unexpected reply {got!r}")


def body(payload: dict[str, Any]) -> None:
    kind = payload.get("b")
    if kind == "rtt":
        sock = _sync_conn()
        sock.sendall(_RTT)
        _read_sync(sock, _RTT_REPLY)
    elif kind == "sleep":
        time.sleep(SLEEP_S)


async def abody(payload: dict[str, Any]) -> None:
    """The body of an async job: its own connection from a per-loop pool (one per job
    running at once, so concurrent jobs never wait for each other's round trips)."""
    kind = payload.get("b")
    if kind == "rtt":
        pool = _pools.setdefault(id(asyncio.get_running_loop()), [])
        if pool:
            reader, writer = pool.pop()
        else:
            reader, writer = await asyncio.open_connection(*_ADDR)
            writer.write(_SELECT)
            if await reader.readexactly(5) != b"+OK\r\n":
                raise RuntimeError("SELECT refused")
        writer.write(_RTT)
        got = await reader.readexactly(len(_RTT_REPLY))
        if got != _RTT_REPLY:
            raise RuntimeError(f"unexpected reply {got!r}")
        pool.append((reader, writer))
    elif kind == "sleep":
        await asyncio.sleep(SLEEP_S)


def record(payload: dict[str, Any]) -> None:
    """A sync job: its body, then the record of it (counted jobs stamp their end)."""
    body(payload)
    _recorder.record(payload)


async def arecord(payload: dict[str, Any]) -> None:
    await abody(payload)
    _recorder.record(payload)


class AsyncAdapter:
    """A system with an asyncio client."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        raise NotImplementedError

    async def enqueue_batch(self, payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def work(self, concurrency: int) -> None:
        raise NotImplementedError


class SyncAdapter:
    """A system with a blocking client (safe to call from several threads)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def close(self) -> None:
        pass

    def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        raise NotImplementedError

    def enqueue_batch(self, payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def work(self, concurrency: int) -> None:
        raise NotImplementedError


Adapter = AsyncAdapter | SyncAdapter


async def until_signal() -> None:
    """Return at the first SIGTERM or SIGINT (for asyncio workers run by hand)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def wait_signal() -> None:
    """Block the main thread until SIGTERM or SIGINT (for thread-based workers)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def _slices(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


async def _enqueue(a: Adapter, mode: str, n: int, producers: int, batch: int,
                   kind: str | None = None) -> float:
    job: dict[str, Any] = {"b": kind} if kind else {}
    payloads: list[dict[str, Any]] = [dict(job) for _ in range(n)]
    if isinstance(a, AsyncAdapter):
        await a.open()
        try:
            t = time.perf_counter()
            if mode == "seq":
                for p in payloads:
                    await a.enqueue(p, None)
            elif mode == "batch":
                for i in range(0, n, batch):
                    await a.enqueue_batch(payloads[i : i + batch])
            else:
                async def producer(k: int) -> None:
                    for _ in range(k):
                        await a.enqueue(dict(job), None)

                await asyncio.gather(*(producer(k) for k in _slices(n, producers)))
            return time.perf_counter() - t
        finally:
            await a.close()
    try:
        t = time.perf_counter()
        if mode == "seq":
            for p in payloads:
                a.enqueue(p, None)
        elif mode == "batch":
            for i in range(0, n, batch):
                a.enqueue_batch(payloads[i : i + batch])
        else:
            def producer_sync(k: int) -> None:
                for _ in range(k):
                    a.enqueue(dict(job), None)

            with ThreadPoolExecutor(producers) as pool:
                list(pool.map(producer_sync, _slices(n, producers)))
        return time.perf_counter() - t
    finally:
        a.close()


async def _timed(a: Adapter, n: int, rate: float, delay: float, group: str) -> None:
    """n jobs at `rate` per second, each carrying its enqueue time (warm-up job if n == 0)."""
    if isinstance(a, AsyncAdapter):
        await a.open()
    try:
        if n == 0:
            if isinstance(a, AsyncAdapter):
                await a.enqueue({"w": 1}, None)
            else:
                a.enqueue({"w": 1}, None)
            return
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            payload = {"t": time.time(), "d": delay, "g": group}
            if isinstance(a, AsyncAdapter):
                await a.enqueue(payload, delay or None)
            else:
                a.enqueue(payload, delay or None)
    finally:
        if isinstance(a, AsyncAdapter):
            await a.close()
        else:
            a.close()


def versions(dists: list[str]) -> dict[str, str]:
    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "?"
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.peers")
    ap.add_argument("peer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    enq = sub.add_parser("enqueue")
    enq.add_argument("--mode", choices=["seq", "conc", "batch"], default="seq")
    enq.add_argument("--n", type=int, default=1000)
    enq.add_argument("--producers", type=int, default=50)
    enq.add_argument("--batch", type=int, default=1000)
    enq.add_argument("--body", choices=BODIES, default=None,
                     help="the jobs' body (default: a no-op)")
    timed = sub.add_parser("timed")
    timed.add_argument("--n", type=int, default=0)
    timed.add_argument("--rate", type=float, default=100.0)
    timed.add_argument("--delay", type=float, default=0.0)
    timed.add_argument("--group", default="lat")
    work = sub.add_parser("worker")
    work.add_argument("--concurrency", type=int, required=True)
    args = ap.parse_args(argv)

    from bench.peers import PEERS

    peer = PEERS[args.peer]
    if args.cmd == "version":
        print(json.dumps(versions(list(peer.dists))))
        return
    if args.cmd == "worker":  # some systems size their worker when the module loads
        os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    module = importlib.import_module(f"bench.peers.{args.peer}")
    adapter: Adapter = module.Adapter(URL)
    if args.cmd == "enqueue":
        seconds = asyncio.run(_enqueue(adapter, args.mode, args.n, args.producers, args.batch,
                                      args.body))
        print(json.dumps({"n": args.n, "seconds": seconds}))
    elif args.cmd == "timed":
        asyncio.run(_timed(adapter, args.n, args.rate, args.delay, args.group))
        print(json.dumps({"n": args.n}))
    else:
        adapter.work(args.concurrency)
