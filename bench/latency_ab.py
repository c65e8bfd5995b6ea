"""Enqueue-to-start latency of Conveyor alone, this tree against an old one (issue 19).

    python -m bench.latency_ab --old-src DIR [--redis URL] [--runs 3] [--n 1000] [--rate 200]

The `latency` step of `bench.compare` (`bench.measure.Runner.timed`: --n jobs at --rate jobs/s
to an idle `conveyor worker`, each stamping when it started; then 200 jobs delayed 1 s), for
Conveyor only, old and new alternating run by run in the same minutes on the same Redis. The
old tree is put first on the worker's and the producer's PYTHONPATH (e.g. `git archive
12545d5 src | tar -x -C /tmp/old`, then `--old-src /tmp/old/src`). Each figure: the median of
--runs, with min and max.

Run it on a private redis-server (`redis-server --port 6393 --save ''`; the default URL names
its db 9): each step flushes that db, as `bench.compare` does (and refuses db 0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.measure import Runner, Sizes

KEYS = ("lat_p50", "lat_p99", "lat_max", "del_p50", "del_p99", "del_max")


class _TreeRunner(Runner):
    """A Runner whose processes import `conveyor` from `src` first."""

    def __init__(self, src: str, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.src = src

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**extra)
        env["PYTHONPATH"] = os.pathsep.join([self.src, env["PYTHONPATH"]])
        return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-src", required=True)
    ap.add_argument("--redis", default="redis://127.0.0.1:6393/9")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0)
    args = ap.parse_args()
    sizes = replace(Sizes(), latency=args.n, rate=args.rate)
    root = Path(__file__).resolve().parent.parent
    trees = {"old": str(Path(args.old_src).resolve()), "new": str(root / "src")}
    py = str(root / ".venv" / "bin" / "python")
    figures: dict[str, dict[str, list[float]]] = {t: {k: [] for k in KEYS} for t in trees}
    with tempfile.TemporaryDirectory() as work:
        for run in range(args.runs):
            for tree, src in trees.items():
                runner = _TreeRunner(src, args.redis, sizes, Path(work), {})
                got = runner.timed(py, "conveyor")
                for k in KEYS:
                    figures[tree][k].append(got[k])  # ms, as the jobs stamp it
                print(f"run {run + 1} {tree}: " + ", ".join(
                    f"{k} {got[k]:.2f}" for k in KEYS), flush=True)
    summary = {tree: {k: [round(statistics.median(v), 2), round(min(v), 2), round(max(v), 2)]
                      for k, v in per.items()} for tree, per in figures.items()}
    for tree, per in summary.items():
        print(tree, json.dumps(per))


if __name__ == "__main__":
    main()
