"""Draws `docs/benchmarks.png` from `bench/.peers/results.json`: throughput and latency, each
bar the median with the runs' min-max as an error bar. Runs in the harness venv (matplotlib
is no dependency of Conveyor): `python -m bench.chart RESULTS.json OUT.png`."""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CONVEYOR = "#d62728"
OTHER = "#1f77b4"


def _stat(entry: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    s = entry.get("summary", {}).get(key)
    return None if not s else (s["median"], s["median"] - s["min"], s["max"] - s["median"])


def bars(ax: Any, peers: dict[str, Any], keys: list[tuple[str, str]], title: str,
         unit: str, log: bool = False) -> None:
    names = [n for n, e in peers.items() if any(_stat(e, k) for k, _ in keys)]
    width = 0.8 / len(keys)
    shades = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    for i, (key, label) in enumerate(keys):
        xs, ys, lo, hi, colors = [], [], [], [], []
        for j, n in enumerate(names):
            st = _stat(peers[n], key)
            if st is None:
                continue
            xs.append(j + (i - (len(keys) - 1) / 2) * width)
            ys.append(st[0])
            lo.append(st[1])
            hi.append(st[2])
            colors.append(CONVEYOR if n == "conveyor" and len(keys) == 1 else shades[i])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, color=colors,
               label=label if len(keys) > 1 else None,
               edgecolor=["black" if names[round(x)] == "conveyor" else "none" for x in xs])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel(unit)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,g}"))
    ax.grid(axis="y", alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize=8)


def main() -> None:
    with open(sys.argv[1]) as f:
        results = json.load(f)
    peers = {n: e for n, e in results["peers"].items() if "unavailable" not in e}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    bars(axes[0][0], peers, [("process", "")],
         f"(b) processing {results['sizes']['process']:,} no-op jobs, one worker process",
         "jobs/s")
    bars(axes[0][1], peers, [("enq_seq", "one by one"), ("enq_conc", "50 producers"),
                             ("enq_batch", "bulk API")], "(a) enqueue", "jobs/s", log=True)
    bars(axes[1][0], peers, [("lat_p50", "p50"), ("lat_p99", "p99")],
         f"(c) enqueue-to-start latency at {results['sizes']['rate']:g} jobs/s", "ms", log=True)
    bars(axes[1][1], peers, [("del_p50", "p50"), ("del_p99", "p99"), ("del_max", "max")],
         "(d) lateness of jobs delayed by 1 s", "ms")
    axes[1][1].set_yscale("symlog", linthresh=10)  # spans 2 ms to 1.5 s, and may go negative
    axes[1][1].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,g}"))
    fig.suptitle("Conveyor and its peers on one Redis (median of runs, bars: min-max)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
