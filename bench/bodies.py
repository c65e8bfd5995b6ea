"""Conveyor's "real job" workloads (`bench.compare` (b')) across worker concurrency, in one run.

    .venv/bin/python -m bench.bodies [--concurrency 10 64 256] [--runs 3]

Each setting, run after run (interleaved): n jobs preloaded with `enqueue_many`, drained by
one `conveyor worker --concurrency N` (the adapter of `bench.peers.conveyor`); prints jobs/s
per run and the median with [min-max].
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.measure import Runner, Sizes
from bench.peers._driver import BODIES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--concurrency", type=int, nargs="*", default=[10, 64, 256])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rtt", type=int, default=Sizes.rtt, help="jobs per rtt run")
    ap.add_argument("--sleep", type=int, default=Sizes.sleep, help="jobs per sleep run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="conveyor-bodies-"))
    rates: dict[tuple[str, int], list[float]] = {}
    for run in range(args.runs):
        for conc in args.concurrency:
            runner = Runner(args.redis, Sizes(rtt=args.rtt, sleep=args.sleep), work,
                            {"conveyor": conc})
            res = runner.bodies(sys.executable, "conveyor")
            runner.probe.flush()
            runner.probe.close()
            for body in BODIES:
                rates.setdefault((body, conc), []).append(res[f"proc_{body}"])
            print(f"run {run + 1} concurrency {conc}: " + "  ".join(
                f"{b} {res[f'proc_{b}']:,.0f}/s" for b in BODIES), flush=True)
    for (body, conc), vals in sorted(rates.items()):
        print(f"{body:5} concurrency {conc:4}: {statistics.median(vals):,.0f} jobs/s "
              f"[{min(vals):,.0f}-{max(vals):,.0f}]")


if __name__ == "__main__":
    main()
