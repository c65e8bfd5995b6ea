"""Conveyor against its peers, on the same local Redis, in one command.

    .venv/bin/python -m bench.compare [--runs 3] [--quick] [--peers NAME ...] [--wait-quiet 1800]

Installs each peer into its own virtualenv (`bench/.peers/<name>`, pip from PyPI), then, run
after run and peer after peer (interleaved, so a change of load hits all of them alike),
in the bench db (default db 9, flushed before every measurement; never db 0):
(a) enqueue throughput: one by one, 50 concurrent producers, and the bulk API where one
    exists; (b) 20,000 queued no-op jobs processed by one worker process; (c) enqueue-to-start
    latency at a low steady rate; (d) lateness of jobs delayed by 1 s; (f) Redis commands per
    job and memory per queued job. (e) is Conveyor's `POST /v1/jobs` through `bench.api`.
Writes `docs/benchmarks.md` and `docs/benchmarks.png`; raw results stay in
`bench/.peers/results.json` (`--report-only` redraws from them).
"""


from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import machine, report, venvs
from bench.measure import QUICK, Runner, Sizes, StepError
from bench.peers import PEERS

ROOT = venvs.ROOT
RESULTS = venvs.VENVS / "results.json"


def wait_quiet(limit_s: float) -> dict[str, Any]:
    """Poll the 1-minute load until it drops below 1.0, for at most limit_s seconds."""
    start = time.monotonic()
    while True:
        load = machine.loadavg()
        if load[0] < 1.0 or time.monotonic() - start >= limit_s:
            return {"waited_s": round(time.monotonic() - start), "quiet": load[0] < 1.0,
                    "load": load}
        print(f"waiting for a quiet machine: load {load[0]:.2f}", flush=True)
        time.sleep(15)


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = sorted({k for r in runs for k in r})
    out = {}
    for k in keys:
        vals = [r[k] for r in runs if k in r]
        out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                  "n": len(vals)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to debug the harness")
    ap.add_argument("--peers", nargs="*", choices=sorted(PEERS), default=list(PEERS))
    ap.add_argument("--concurrency", nargs="*", default=[], metavar="NAME=N",
                    help="override a peer's worker concurrency")
    ap.add_argument("--no-api", action="store_true", help="skip (e), the API benchmark")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="first wait (at most this long) for a 1-minute load below 1.0")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()
    if args.report_only:
        results = json.loads(RESULTS.read_text())
    else:
        results = collect(args)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1))
    out = Path(args.out)
    report.write(results, out / "benchmarks.md")
    try:
        harness = venvs.ensure_harness()
        subprocess.run([harness, "-m", "bench.chart", str(RESULTS), str(out / "benchmarks.png")],
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"chart not drawn: {exc}", file=sys.stderr)
    print(f"wrote {out / 'benchmarks.md'}", flush=True)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else Sizes()
    overrides = {k: int(v) for k, v in (o.split("=", 1) for o in args.concurrency)}
    started = time.time()
    quiet = wait_quiet(args.wait_quiet) if args.wait_quiet else None
    results: dict[str, Any] = {
        "started": started, "sizes": asdict(sizes), "runs": args.runs, "quiet": quiet,
        "machine": machine.describe(), "load": [], "peers": {},
    }
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    runner = Runner(args.redis, sizes, work, overrides)
    results["machine"].update(runner.probe.server())
    pythons: dict[str, str] = {}
    for name in args.peers:
        entry: dict[str, Any] = {"config": PEERS[name].config, "runs": [], "errors": []}
        entry["concurrency"] = overrides.get(name, PEERS[name].concurrency)
        results["peers"][name] = entry
        try:
            print(f"installing {name}", flush=True)
            py = venvs.ensure_peer(name)
            entry["versions"] = runner.cli(py, name, "version")
            pythons[name] = py
        except (RuntimeError, StepError, subprocess.CalledProcessError) as exc:
            entry["unavailable"] = str(exc)
    for run in range(args.runs):
        for name, py in pythons.items():
            load = machine.loadavg()
            results["load"].append(load[0])
            print(f"run {run + 1}/{args.runs} {name} (load {load[0]:.2f})", flush=True)
            t = time.monotonic()
            res, errors, breakdown = runner.run_once(py, name)
            entry = results["peers"][name]
            entry["runs"].append(res)
            entry["errors"].append(errors)
            if breakdown:
                entry["commands"] = breakdown
            print(f"  {time.monotonic() - t:.0f} s  " + "  ".join(
                f"{k} {v:,.1f}" for k, v in res.items() if not k.startswith(("cs_", "mem_"))
            ) + ("  errors: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
                 if errors else ""), flush=True)
    for entry in results["peers"].values():
        entry["summary"] = summarise(entry["runs"])
    if not args.no_api:
        print("conveyor api (bench.api)", flush=True)
        results["api"] = runner.api()
    results["load"].append(machine.loadavg()[0])
    results["finished"] = time.time()
    runner.probe.close()
    return results


if __name__ == "__main__":
    main()
