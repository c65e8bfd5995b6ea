"""Load benchmark of `POST /v1/jobs` through one `conveyor api` process (uvicorn) on loopback.

    python -m bench.api [--redis URL] [--duration 10] [--connections 64] [--runs 3] [--wrk]

Starts `conveyor api` on a free port with its own key prefix, then per run:
(a) saturation: `--connections` keep-alive connections send back to back for `--duration`
    seconds -> requests/s and latency percentiles (closed loop, so latency includes queueing);
(b) half rate: an open-loop schedule at half of (a)'s rate, latency measured from each
    request's scheduled start (no coordinated omission) -> p50 / p99 / p99.9.
The load generator is a minimal HTTP/1.1 client on asyncio (uvloop when installed), far
lighter than an HTTP library, so it takes little of the CPU the server needs. `--wrk` also
runs wrk for (a) when it is on PATH. "server cpu" is the API process's CPU time, from
/proc: requests per CPU-second is its capacity on one core, whatever else shares the machine.
Each figure is the median of --runs runs. Every key is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"type": "fake", "payload": {}, "queue": "bench"}'
REQUEST = (
    b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
_LENGTH_RE = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        lat = self.latencies_ms
        per_cpu = self.requests / self.server_cpu_s if self.server_cpu_s else 0.0
        return (f"{self.rps:8,.0f} req/s  p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms"
                f"  p99.9 {pct(lat, 99.9):6.2f} ms  errors {self.errors}"
                f"  server cpu {self.server_cpu_s:5.2f} s ({per_cpu:,.0f} req per cpu-s)")


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    m = _LENGTH_RE.search(head)
    await reader.readexactly(int(m.group(1)) if m else 0)
    return int(head[9:12])


async def saturate(port: int, pid: int, seconds: float, connections: int) -> Result:
    conns = [await _connect(port) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    cpu0 = cpu_s(pid)
    start = time.perf_counter()
    end = start + seconds

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while (t := time.perf_counter()) < end:
            status = await _post(reader, writer)
            latencies.append((time.perf_counter() - t) * 1000)
            errors += status != 201

    await asyncio.gather(*(loop(r, w) for r, w in conns))
    elapsed = time.perf_counter() - start
    cpu = cpu_s(pid) - cpu0
    for _, w in conns:
        w.close()
    return Result(len(latencies), elapsed, latencies, errors, cpu)


async def fixed_rate(port: int, pid: int, seconds: float, rate: float, connections: int) -> Result:
    """Open loop: request i is due at start + i / rate; latency counts from that instant."""
    conns = [await _connect(port) for _ in range(connections)]
    total = int(seconds * rate)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05
    slots: Iterator[int] = iter(range(total))
    cpu0 = cpu_s(pid)

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        for i in slots:
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            status = await _post(reader, writer)
            latencies.append((time.perf_counter() - due) * 1000)
            errors += status != 201

    await asyncio.gather(*(loop(r, w) for r, w in conns))
    elapsed = time.perf_counter() - start
    cpu = cpu_s(pid) - cpu0
    for _, w in conns:
        w.close()
    return Result(len(latencies), elapsed, latencies, errors, cpu)


def wrk(port: int, seconds: float, connections: int) -> str:
    script = ROOT / "bench" / ".post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{BODY.decode()}'\n"
    )
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script),
             "--latency", f"http://127.0.0.1:{port}/v1/jobs"],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout
    finally:
        script.unlink(missing_ok=True)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return f"{float(rps.group(1)) if rps else 0:8,.0f} req/s  p99 {p99.group(1) if p99 else '?'}"


def start_api(redis_url: str, prefix: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_BROKER_URL=redis_url, CONVEYOR_KEY_PREFIX=prefix,
               CONVEYOR_LOG_LEVEL="WARNING", CONVEYOR_API_KEYS="")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "api", "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"conveyor api exited with {proc.returncode}: {log.read().decode()}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("conveyor api did not become ready within 30 s")


def cleanup(redis_url: str, prefix: str) -> None:
    r = Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"{prefix}:*", count=5000))
        for i in range(0, len(keys), 5000):
            r.delete(*keys[i : i + 5000])
    finally:
        r.close()


async def run(args: argparse.Namespace, port: int, pid: int) -> None:
    await saturate(port, pid, 1.0, args.connections)  # warm-up: connections, scripts, caches
    full: list[Result] = []
    half: list[Result] = []
    for i in range(args.runs):
        full.append(await saturate(port, pid, args.duration, args.connections))
        print(f"run {i + 1} saturation  {full[-1].line()}", flush=True)
        rate = full[-1].rps / 2
        half.append(await fixed_rate(port, pid, args.duration, rate, args.connections))
        print(f"run {i + 1} half rate   {half[-1].line()}  (target {rate:,.0f}/s)", flush=True)
        if args.wrk:
            print(f"run {i + 1} wrk         {wrk(port, args.duration, args.connections)}",
                  flush=True)
    print(f"\nmedian of {args.runs}: saturation "
          f"{statistics.median(r.rps for r in full):,.0f} req/s, "
          f"p99 {statistics.median(pct(r.latencies_ms, 99) for r in full):.2f} ms; "
          f"half rate {statistics.median(r.rps for r in half):,.0f} req/s, "
          f"p99 {statistics.median(pct(r.latencies_ms, 99) for r in half):.2f} ms; "
          f"capacity {statistics.median(r.requests / r.server_cpu_s for r in full):,.0f} "
          "req per server cpu-second")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--wrk", action="store_true", help="also measure saturation with wrk")
    args = ap.parse_args()
    if args.wrk and shutil.which("wrk") is None:
        raise SystemExit("--wrk: wrk is not on PATH (apt-get install wrk)")
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop
    prefix = "cvbench-" + uuid.uuid4().hex[:8]
    port = free_port()
    # the server's log goes to a file, not a pipe: a full pipe would stall the server
    with tempfile.TemporaryFile() as log:
        _bench(args, loop_factory, prefix, port, log)


def _bench(
    args: argparse.Namespace, loop_factory: Callable[[], asyncio.AbstractEventLoop],
    prefix: str, port: int, log: IO[bytes],
) -> None:
    proc = start_api(args.redis, prefix, port, log)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(run(args, port, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        cleanup(args.redis, prefix)


if __name__ == "__main__":
    main()
