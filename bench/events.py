"""What job events cost (issue 17): processing throughput of one worker process with events
on (the default CONVEYOR_EVENTS_MAXLEN) and off (`CONVEYOR_EVENTS_MAXLEN=0`), and the Redis
server's own CPU time per job (INFO cpu, user + sys, over the timed part).

    python -m bench.events [--redis URL] [--jobs 20000] [--runs 3] [--before DIR]

Each run is `bench.core`'s process run (20,000 queued no-op jobs, `conveyor worker`,
concurrency 64). Configurations are interleaved run by run so a noisy machine hurts all
alike; medians of --runs. `--before DIR` adds the same two configurations with the worker
run from another source tree (`git archive <commit> src | tar -x -C /tmp/x`, DIR
/tmp/x/src), to compare before and after in one run (the untimed enqueue runs this tree).
The server's CPU is server-wide: give a private Redis (`redis-server --port 6391 --save ''`)
for server figures that count this bench only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable

from bench.core import ProcessRun, process_run


async def main_async(url: str, n: int, runs: int, before: str | None) -> None:
    configs: dict[str, tuple[str | None, str | None]] = {"on": (None, None), "off": ("0", None)}
    if before:
        configs = {"before on": (None, before), "before off": ("0", before), **configs}
    results: dict[str, list[ProcessRun]] = {name: [] for name in configs}
    for r in range(runs):
        for name, (maxlen, src) in configs.items():
            env = {"CONVEYOR_EVENTS_MAXLEN": maxlen} if maxlen is not None else {}
            run = await process_run(url, n, 64, env=env, path=[src] if src else [])
            results[name].append(run)
            print(f"run {r + 1} {name}: {run.rate:,.0f} jobs/s, CPU per job: worker "
                  f"{run.worker_cpu_us:.0f} µs, server {run.server_cpu_us:.1f} µs", flush=True)
    figures: list[tuple[str, Callable[[ProcessRun], float]]] = [
        ("jobs/s", lambda x: x.rate),
        ("worker CPU µs/job", lambda x: x.worker_cpu_us),
        ("server CPU µs/job", lambda x: x.server_cpu_us),
        ("worker + server CPU µs/job", lambda x: x.worker_cpu_us + x.server_cpu_us)]
    for label, get in figures:
        med = {name: statistics.median(map(get, v)) for name, v in results.items()}
        for name, value in med.items():
            off = med[name.removesuffix("on") + "off"] if name.endswith("on") else None
            rel = f"  (events: {(value / off - 1) * 100:+.1f}%)" if off else ""
            vals = [get(x) for x in results[name]]
            print(f"{name:10s} median {value:,.1f} {label} [{min(vals):,.1f}-"
                  f"{max(vals):,.1f}]{rel}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--before", help="another source tree (its src/ directory) for the worker")
    a = p.parse_args()
    asyncio.run(main_async(a.redis, a.jobs, a.runs, a.before))


if __name__ == "__main__":
    main()
