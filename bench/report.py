"""Writes `docs/benchmarks.md` from the results `bench.compare` collected: one table per
measurement, each cell the median of the runs with [min-max], plus the machine and setup."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FINDINGS = ROOT / "bench" / "findings.md"


def cell(entry: dict[str, Any], key: str, digits: int = 0) -> str:
    s = entry.get("summary", {}).get(key)
    if not s:
        return "—"
    f = f"{{:,.{digits}f}}"
    if s["n"] == 1 or f.format(s["min"]) == f.format(s["max"]):
        return f.format(s["median"])
    return f"{f.format(s['median'])} [{f.format(s['min'])}-{f.format(s['max'])}]"


def median(entry: dict[str, Any], key: str) -> float | None:
    s = entry.get("summary", {}).get(key)
    return None if not s else float(s["median"])


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def _live(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, e) for n, e in results["peers"].items() if "unavailable" not in e]


def _errors(entry: dict[str, Any], step: str) -> str | None:
    msgs = {e[step] for e in entry.get("errors", []) if step in e}
    return "; ".join(sorted(msgs)) if msgs else None


def machine_section(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    loads = r.get("load", [])
    quiet = r.get("quiet")
    lines = ["## Machine", ""]
    lines += table(["", ""], [
        ["cores (`nproc`)", str(m["nproc"])],
        ["CPU", m["cpu"]],
        ["kernel / Python", f"{m['kernel']} / {m['python']}"],
        ["Redis", f"{m.get('redis_version')} on 127.0.0.1:6379 (shared with the machine's other"
                  f" work), maxmemory-policy {m.get('maxmemory_policy')}, AOF "
                  f"{'on' if m.get('aof_enabled') == '1' else 'off'}, io-threads "
                  f"{m.get('io_threads')}"],
        ["load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in m["load_start"])],
        ["1-minute load before each system's run",
         f"min {min(loads):.2f}, median {statistics.median(loads):.2f}, max {max(loads):.2f}"
         if loads else "—"],
    ])
    if quiet:
        state = "quiet" if quiet["quiet"] else "**never quiet**"
        lines += [f"Waited {quiet['waited_s']} s for a 1-minute load below 1.0 before starting:"
                  f" {state} (load {' / '.join(f'{x:.2f}' for x in quiet['load'])}).", ""]
    lines += ["`free -h`:", "", "```", m["free_h"], "```", ""]
    return lines


def systems_section(r: dict[str, Any]) -> list[str]:
    rows = []
    for name, e in r["peers"].items():
        vers = ", ".join(f"{k} {v}" for k, v in e.get("versions", {}).items()) or "—"
        status = f"not measured: {e['unavailable']}" if "unavailable" in e else e["config"]
        rows.append([f"**{name}**", vers, status, e.get("sweep", "")])
    return ["## Systems and configurations", "",
            "Each peer runs in its own virtualenv (`bench/.peers/<name>`, pip from PyPI); every"
            " worker is one process running a no-op job function on queue `bench`. The"
            " configuration is each system's fastest found by a short sweep (5,000 queued"
            " no-op jobs, 2 runs per setting, jobs/s, on the same busy machine), within what"
            " its documentation offers; the same configuration serves every measurement.", "",
            *table(["system", "versions", "worker configuration", "sweep (jobs/s)"], rows)]


def measurements(r: dict[str, Any]) -> list[str]:
    sz = r["sizes"]
    live = _live(r)
    conv = dict(live).get("conveyor", {})
    lines: list[str] = []

    rows = [[n, cell(e, "enq_seq"), cell(e, "enq_conc"),
             cell(e, "enq_batch") + (f" ({e['batch_api']})" if e.get("batch_api") else "")
             if median(e, "enq_batch") else "no bulk API"] for n, e in live]
    lines += ["## (a) Enqueue throughput (jobs/s)", "",
              f"One by one: {sz['seq']:,} sequential calls from one producer. Concurrent: "
              f"{sz['conc']:,} jobs from 50 producers (asyncio tasks, or threads for blocking "
              f"clients). Bulk: {sz['process']:,} jobs in calls of 1,000 (the preload of (b)).",
              "", *table(["system", "one by one", "50 concurrent producers", "bulk"], rows)]

    best_peer = max((median(e, "process") or 0.0 for n, e in live if n != "conveyor"),
                    default=0.0)
    rows = []
    for n, e in live:
        ratio = ""
        if median(e, "process") and median(conv, "process"):
            ratio = f"{median(conv, 'process') / median(e, 'process'):.1f}x"  # type: ignore[operator]
        rows.append([n, str(e["concurrency"]), cell(e, "process"),
                     ratio if n != "conveyor" else "—"])
    lines += ["## (b) Processing throughput (jobs/s)", "",
              f"{sz['process']:,} no-op jobs queued before the worker starts; the rate runs"
              " from the first job's start to the last one's, both stamped by the job itself"
              " (worker start-up excluded).", "",
              *table(["system", "concurrency", "jobs/s", "Conveyor is"], rows)]
    if best_peer and median(conv, "process"):
        lines += [f"Conveyor / best peer: **{median(conv, 'process') / best_peer:.2f}x**.",  # type: ignore[operator]
                  ""]

    lines += bodies_section(r)

    rows = [[n, cell(e, "lat_p50", 1), cell(e, "lat_p99", 1), cell(e, "lat_max", 1)]
            for n, e in live]
    lines += ["## (c) Enqueue-to-start latency (ms)", "",
              f"{sz['latency']:,} jobs at {sz['rate']:g}/s to an idle, warmed-up worker; each job"
              " carries the producer's clock reading taken just before the enqueue call, and"
              " the job subtracts it from its own start time (same host, same clock).", "",
              *table(["system", "p50", "p99", "max"], rows)]

    rows = []
    for n, e in live:
        why = e.get("no_delay")
        if why:
            rows.append([n, "—", "—", f"— ({why})"])
        else:
            rows.append([n, cell(e, "del_p50", 1), cell(e, "del_p99", 1), cell(e, "del_max", 1)])
    lines += ["## (d) Lateness of jobs delayed by 1 s (ms)", "",
              f"{sz['delayed']:,} jobs at {sz['rate']:g}/s, each delayed by 1 s; lateness is its"
              " start minus (enqueue time + 1 s). Negative: started early.", "",
              *table(["system", "p50", "p99", "max"], rows)]
    return lines


def _versus(live: list[tuple[str, dict[str, Any]]], key: str) -> tuple[dict[str, str], str]:
    """Each peer's "Conveyor is Nx" on `key`, and Conveyor over the best peer."""
    conv = median(dict(live).get("conveyor", {}), key)
    ratios = {n: f"{conv / m:.1f}x" for n, e in live
              if n != "conveyor" and conv and (m := median(e, key))}
    best = max((median(e, key) or 0.0 for n, e in live if n != "conveyor"), default=0.0)
    return ratios, f"{conv / best:.2f}x" if conv and best else "—"


def bodies_section(r: dict[str, Any]) -> list[str]:
    """(b') the "real job" workloads: one Redis round trip per job, 10 ms of sleep per job."""
    sz = r["sizes"]
    live = [(n, e) for n, e in _live(r) if median(e, "proc_rtt") or median(e, "proc_sleep")]
    if not live or "rtt" not in sz:
        return []
    rtt, rtt_best = _versus(live, "proc_rtt")
    slp, slp_best = _versus(live, "proc_sleep")
    rows = [[n, str(e["concurrency"]), cell(e, "proc_rtt"), rtt.get(n, "—"),
             cell(e, "proc_sleep"), slp.get(n, "—")] for n, e in live]
    return ["## (b') Processing jobs with a body (jobs/s)", "",
            f"As (b), with a job that does something: *round trip*, {sz['rtt']:,} jobs each"
            " sending one pipelined `SET` + `GET` to the same Redis over its own connection"
            " (a stdlib client in `bench.peers._driver`, the same for every system: async"
            " jobs take a connection from a per-process pool, one per job running at once;"
            f" sync jobs one per thread); *sleep*, {sz['sleep']:,} jobs each waiting 10 ms"
            " (`asyncio.sleep`, or `time.sleep` in a sync job). Rate from the first job's end"
            " to the last one's; each system at its configuration of (b). Conveyor across"
            " concurrency: `python -m bench.bodies` (bench/findings.md).", "",
            *table(["system", "concurrency", "round trip", "Conveyor is", "sleep 10 ms",
                    "Conveyor is"], rows),
            f"Conveyor / best peer: round trip **{rtt_best}**, sleep **{slp_best}**.", ""]


def api_section(r: dict[str, Any]) -> list[str]:
    api = r.get("api")
    if not api:
        return []
    lines = ["## (e) Conveyor `POST /v1/jobs` through the API", ""]
    if "error" in api:
        return [*lines, f"Not measured: {api['error']}", ""]
    rows = []
    for mode, runs in api["runs"].items():
        if not runs:
            continue
        rows.append([mode] + [_spread([x[k] for x in runs], 1 if k != "rps" else 0)
                              for k in ("rps", "p50", "p99")])
    lines += [f"`python -m bench.api`: one `conveyor api` process (uvicorn), "
              f"{api['connections']} keep-alive connections from a light asyncio load generator"
              f" on the same 2 cores, {api['duration_s']:g} s per measurement. Saturation is"
              " closed-loop (latency includes queueing); half rate is open-loop at half the"
              " saturated rate, latency from each request's scheduled start.", "",
              *table(["load", "requests/s", "p50 (ms)", "p99 (ms)"], rows)]
    return lines


def _spread(vals: list[float], digits: int) -> str:
    f = f"{{:,.{digits}f}}"
    med = f.format(statistics.median(vals))
    return med if len(vals) == 1 else f"{med} [{f.format(min(vals))}-{f.format(max(vals))}]"


def cost_section(r: dict[str, Any]) -> list[str]:
    sz = r["sizes"]
    live = _live(r)
    rows = [[n, cell(e, "cmd_enq", 1), cell(e, "cmd_enq_client", 1), cell(e, "cmd_proc", 1),
             cell(e, "cmd_proc_client", 2), cell(e, "cs_enq", 1), cell(e, "cs_proc", 1)]
            for n, e in live]
    lines = ["## (f) Redis cost per job", "",
             f"{sz['cost']:,} jobs enqueued one by one with no worker running, then processed by"
             " one worker. Commands are counted with MONITOR, filtered to the bench db (the"
             " Redis server is shared): *all* includes the commands scripts run, *sent* only"
             " what clients sent (an EVALSHA or a MULTI counts once; pipelined commands each"
             " count, so *sent* bounds round trips from above). Processing counts the window"
             " from the first job's start to the last one's. The `INFO commandstats` columns"
             " are server-wide deltas (they match MONITOR when nothing else ran; processing"
             " there also includes worker start-up and 0.3 s of idling).", "",
             *table(["system", "enqueue: all", "enqueue: sent", "process: all",
                     "process: sent", "commandstats enqueue", "commandstats process"], rows)]
    rows = [[n, cell(e, "mem_keys"), cell(e, "mem_used"), cell(e, "keys_per_job", 2)]
            for n, e in live]
    lines += ["Memory per queued job (bytes), with the jobs waiting: the sum of `MEMORY USAGE`"
              " over the bench db's keys, and the server's `used_memory` delta.", "",
              *table(["system", "MEMORY USAGE", "used_memory delta", "keys per job"], rows)]
    rows = []
    for n, e in live:
        cmds = e.get("commands") or {}
        top = sorted(cmds.items(), key=lambda kv: -kv[1])[:8]
        rows.append([n, ", ".join(f"{k} {v:.2f}" for k, v in top) or "—"])
    lines += ["Commands per processed job (all, last run), most frequent first:", "",
              *table(["system", "commands per job"], rows)]
    return lines


def problems_section(r: dict[str, Any]) -> list[str]:
    rows = []
    for n, e in r["peers"].items():
        if "unavailable" in e:
            rows.append([n, "all", e["unavailable"]])
            continue
        for step in ("enq_seq", "enq_conc", "process", "bodies", "latency", "cost"):
            msg = _errors(e, step)
            if msg:
                rows.append([n, step, msg.replace("|", "/")])
    if not rows:
        return []
    return ["## Failures", "", *table(["system", "step", "reason"], rows)]


def write(results: dict[str, Any], path: Path) -> None:
    from bench.peers import PEERS

    for name, e in results["peers"].items():
        peer = PEERS.get(name)
        e["batch_api"] = peer.batch_api if peer else None
        e["no_delay"] = peer.no_delay if peer else None
        e["sweep"] = peer.sweep if peer else ""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results["started"]))
    minutes = (results.get("finished", results["started"]) - results["started"]) / 60
    lines = [
        "# Benchmarks: Conveyor and its peers", "",
        f"Generated by `python -m bench.compare` on {started} ({minutes:.0f} minutes). Every"
        f" figure is the median of {results['runs']} runs, with [min-max] across runs; runs of"
        " the systems are interleaved so that a change of load touches all of them. Every"
        " system talks to the same local Redis, in its own db (flushed between measurements).",
        "", "Reproduce with `.venv/bin/python -m bench.compare --wait-quiet 1800` (Redis on"
        " 127.0.0.1:6379; about 30 minutes; `--quick --runs 1` checks the harness in 3).", "",
        "![throughput and latency](benchmarks.png)", "",
    ]
    lines += machine_section(results) + systems_section(results) + measurements(results)
    lines += api_section(results) + cost_section(results) + problems_section(results)
    if FINDINGS.exists():
        lines += [FINDINGS.read_text().strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
