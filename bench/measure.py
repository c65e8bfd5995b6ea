"""The measurements of `bench.compare`, one system at a time: each starts the system's own
processes (`python -m bench.peers NAME ...` in its virtualenv) and reads back what its jobs
stamped (see `bench.peers._driver`) and what Redis counted (see `bench.redisprobe`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import venvs
from bench.peers import PEERS
from bench.redisprobe import Monitor, Probe, delta

ROOT = venvs.ROOT


@dataclass(frozen=True)
class Sizes:
    seq: int = 2000
    conc: int = 5000
    process: int = 20000
    latency: int = 1000
    delayed: int = 200
    rate: float = 200.0
    cost: int = 2000
    api_s: float = 5.0
    api_runs: int = 3
    #: jobs of the "real job" workloads: one Redis round trip each, 10 ms of sleep each
    rtt: int = 5000
    sleep: int = 2000


QUICK = Sizes(seq=200, conc=500, process=2000, latency=50, delayed=20, rate=50.0, cost=200,
              api_s=1.0, api_runs=1, rtt=500, sleep=200)


class StepError(RuntimeError):
    pass


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class Runner:
    def __init__(self, url: str, sizes: Sizes, work: Path, concurrency: dict[str, int]) -> None:
        self.url = url
        self.sizes = sizes
        self.work = work
        self.concurrency = concurrency
        self.probe = Probe(url)
        self._logs: dict[int, Path] = {}

    # --- processes --------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CONVEYOR_")}
        env.update(PYTHONPATH=str(ROOT), BENCH_REDIS_URL=self.url, PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def cli(self, py: str, peer: str, *args: str, timeout: float = 300) -> dict[str, Any]:
        try:
            proc = subprocess.run([py, "-m", "bench.peers", peer, *args], env=self.env(),
                                  cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise StepError(f"`{' '.join(args)}` took over {timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise StepError(f"`{' '.join(args)}` failed: {_tail(proc.stderr)}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))

    def start_worker(self, py: str, peer: str, out: Path, n: int) -> subprocess.Popen[bytes]:
        out.unlink(missing_ok=True)
        path = self.work / f"{peer}-worker.log"
        conc = self.concurrency.get(peer, PEERS[peer].concurrency)
        with open(path, "ab") as log:
            proc = subprocess.Popen(
                [py, "-m", "bench.peers", peer, "worker", "--concurrency", str(conc)],
                env=self.env(BENCH_OUT=str(out), BENCH_N=str(n)), cwd=ROOT,
                stdout=log, stderr=log, start_new_session=True,
            )
        self._logs[proc.pid] = path
        return proc

    @staticmethod
    def stop_worker(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the worker's process group (it may have children), then SIGKILL."""
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait_s)
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                pass
            return

    def wait_for(self, out: Path, done: Callable[[list[str]], bool], timeout: float,
                 proc: subprocess.Popen[bytes], what: str) -> list[str]:
        end = time.monotonic() + timeout
        while True:
            lines = out.read_text().splitlines() if out.exists() else []
            if done(lines):
                return lines
            if proc.poll() is not None:
                raise StepError(f"the worker exited ({proc.returncode}) before {what}: "
                                f"{_tail(self._log(proc))}")
            if time.monotonic() > end:
                raise StepError(f"no {what} within {timeout:.0f} s ({len(lines)} lines seen)")
            time.sleep(0.02)

    def _log(self, proc: subprocess.Popen[bytes]) -> str:
        path = self._logs.get(proc.pid)
        return path.read_text(errors="replace") if path and path.exists() else ""

    # --- measurements -----------------------------------------------------------------------
    def enqueue(self, py: str, peer: str, mode: str, n: int, body: str | None = None) -> float:
        self.probe.flush()
        extra = ("--body", body) if body else ()
        res = self.cli(py, peer, "enqueue", "--mode", mode, "--n", str(n), *extra)
        return n / float(res["seconds"])

    def process(self, py: str, peer: str) -> dict[str, float]:
        """Bulk (or concurrent) preload of n jobs, then one worker: rate from the first job's
        start to the n-th's, both stamped by the job itself."""
        n = self.sizes.process
        out: dict[str, float] = {}
        if PEERS[peer].batch_api:
            out["enq_batch"] = self.enqueue(py, peer, "batch", n)
        else:
            self.enqueue(py, peer, "conc", n)
        first, last = self._drain(py, peer, n, self.work / "process.out")
        out["process"] = (n - 1) / (last - first)
        return out

    def bodies(self, py: str, peer: str) -> dict[str, float]:
        """(b') the "real job" workloads: n jobs preloaded, each with a body (one Redis round
        trip of its own; 10 ms of sleep), drained by one worker; rate from the first job's
        end to the n-th's."""
        out: dict[str, float] = {}
        for body, n in (("rtt", self.sizes.rtt), ("sleep", self.sizes.sleep)):
            self.enqueue(py, peer, "batch" if PEERS[peer].batch_api else "conc", n, body)
            first, last = self._drain(py, peer, n, self.work / f"{body}.out")
            out[f"proc_{body}"] = (n - 1) / (last - first)
        return out

    def _drain(self, py: str, peer: str, n: int, out: Path) -> tuple[float, float]:
        proc = self.start_worker(py, peer, out, n)
        try:
            lines = self.wait_for(out, lambda ls: any(x.startswith("last") for x in ls),
                                  max(60.0, n / 100 + 30), proc, f"{n} jobs processed")
        finally:
            self.stop_worker(proc)
        stamps = dict(x.split() for x in lines if x.startswith(("first", "last")))
        return float(stamps["first"]), float(stamps["last"])

    def timed(self, py: str, peer: str) -> dict[str, float]:
        s = self.sizes
        self.probe.flush()
        out = self.work / "timed.out"
        proc = self.start_worker(py, peer, out, 0)
        res: dict[str, float] = {}
        try:
            self.cli(py, peer, "timed", "--n", "0")
            self.wait_for(out, lambda ls: "ready" in ls, 60, proc, "the warm-up job")
            for group, n, delay in (("lat", s.latency, 0.0), ("del", s.delayed, 1.0)):
                if delay and PEERS[peer].no_delay:
                    continue
                self.cli(py, peer, "timed", "--n", str(n), "--rate", str(s.rate), "--delay",
                         str(delay), "--group", group, timeout=n / s.rate + 60)
                lines = self.wait_for(out, _has(group + " ", n), 30 + delay, proc,
                                      f"{n} timed jobs ({group})")
                vals = [float(x.split()[1]) for x in lines if x.startswith(group + " ")]
                res.update({f"{group}_p50": pct(vals, 50), f"{group}_p99": pct(vals, 99),
                            f"{group}_max": max(vals)})
        finally:
            self.stop_worker(proc)
        return res

    def cost(self, py: str, peer: str) -> tuple[dict[str, float], dict[str, float]]:
        """Commands and memory per job: n jobs enqueued one by one (no worker running), then
        processed. MONITOR counts only the bench db; the processing window runs from the
        first job's start to the last one's (start-up and idle polling excluded)."""
        n = self.sizes.cost
        self.probe.flush()
        mon = Monitor(self.probe.host, self.probe.port, self.probe.db)
        mon.start()
        mon.ready.wait(5)
        try:
            c0, m0, t0 = self.probe.calls(), self.probe.used_memory(), time.time()
            self.cli(py, peer, "enqueue", "--mode", "seq", "--n", str(n))
            t1, c1, m1 = time.time(), self.probe.calls(), self.probe.used_memory()
            keys, key_bytes = self.probe.key_memory()
            c1 = self.probe.calls()
            first, last = self._drain(py, peer, n, self.work / "cost.out")
            time.sleep(0.3)  # the last acks
            c2 = self.probe.calls()
        finally:
            mon.stop()
        enq, run = mon.count(t0, t1), mon.count(first, last)
        metrics = {
            "cmd_enq": enq.total / n, "cmd_enq_client": enq.client / n,
            "cmd_proc": run.total / (n - 1), "cmd_proc_client": run.client / (n - 1),
            "cs_enq": delta(c0, c1) / n, "cs_proc": delta(c1, c2) / n,
            "mem_keys": key_bytes / n, "mem_used": (m1 - m0) / n, "keys_per_job": keys / n,
        }
        client_cmds = {k: v / (n - 1) for k, v in run.by_command.items()}
        return metrics, client_cmds

    def run_once(self, py: str, peer: str) -> tuple[dict[str, float], dict[str, str], Any]:
        """All measurements of one peer, once. A failing step is recorded and skipped."""
        s = self.sizes
        res: dict[str, float] = {}
        errors: dict[str, str] = {}
        breakdown: Any = None
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("enq_seq", lambda: {"enq_seq": self.enqueue(py, peer, "seq", s.seq)}),
            ("enq_conc", lambda: {"enq_conc": self.enqueue(py, peer, "conc", s.conc)}),
            ("process", lambda: self.process(py, peer)),
            ("bodies", lambda: self.bodies(py, peer)),
            ("latency", lambda: self.timed(py, peer)),
        ]
        for name, step in steps:
            try:
                res.update(step())
            except (StepError, KeyError, ValueError, ZeroDivisionError) as exc:
                errors[name] = str(exc)
        try:
            metrics, breakdown = self.cost(py, peer)
            res.update(metrics)
        except (StepError, KeyError, ValueError, ZeroDivisionError) as exc:
            errors["cost"] = str(exc)
        self.probe.flush()
        return res, errors, breakdown

    def api(self) -> dict[str, Any]:
        """(e) through bench.api: per run, saturation and half-rate req/s and p99."""
        s = self.sizes
        self.probe.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "bench.api", "--redis", self.url, "--duration", str(s.api_s),
             "--runs", str(s.api_runs)],
            env=self.env(), cwd=ROOT, capture_output=True, text=True,
            timeout=s.api_runs * (2 * s.api_s + 30) + 60,
        )
        self.probe.flush()
        if proc.returncode != 0:
            return {"error": _tail(proc.stderr)}
        runs: dict[str, list[dict[str, float]]] = {"saturation": [], "half rate": []}
        pattern = re.compile(r"run \d+ (saturation|half rate)\s+([\d,]+) req/s\s+p50\s+([\d.]+)"
                             r" ms\s+p99\s+([\d.]+) ms")
        for m in pattern.finditer(proc.stdout):
            runs[m.group(1)].append({"rps": float(m.group(2).replace(",", "")),
                                     "p50": float(m.group(3)), "p99": float(m.group(4))})
        return {"runs": runs, "duration_s": s.api_s, "connections": 64}


def _has(prefix: str, n: int) -> Callable[[list[str]], bool]:
    return lambda lines: sum(x.startswith(prefix) for x in lines) >= n


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-600:]
