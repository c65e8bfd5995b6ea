"""The reconciliation run after every scenario: the broker's view against the ledger's.

It asserts the promise (an accepted job ends SUCCEEDED or DEAD, exactly once), explains every
duplicate run (only a lost lease may cause one), checks that the result that counted came from
the lease holder (stale acks were rejected), and that the work indexes drained and `audit()`
is clean. It reports instead of raising, so a scenario can also prove it *fails* (scenario 5).
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.brokers.base import SERIES_KEEP_MINUTES, AuditReport, Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.redis.records import job_from_hash
from conveyor.ids import split_job_id
from conveyor.jobs import Job, JobState
from tests.chaos.ledger import Event, Run

TERMINAL = ("succeeded", "dead")
WORK_INDEXES = (JobState.QUEUED, JobState.RUNNING, JobState.SCHEDULED)
CHUNK = 500


@dataclass
class Reconciliation:
    queue: str
    accepted: int = 0
    succeeded: int = 0
    dead: int = 0
    #: accepted, but the broker has no record of it
    missing: list[str] = field(default_factory=list)
    #: a record, but not in a terminal state
    unfinished: list[str] = field(default_factory=list)
    #: history without exactly one terminal entry, or with one that is not the last
    bad_history: list[str] = field(default_factory=list)
    #: handler completions in the ledger
    executions: int = 0
    #: jobs whose handler completed more than once
    duplicated: list[str] = field(default_factory=list)
    #: completed runs that did not count, with no lost lease to explain them
    unexplained: list[str] = field(default_factory=list)
    #: succeeded jobs whose result was not written by the current lease holder's run
    stale_accepted: list[str] = field(default_factory=list)
    #: lease expiries recorded in the histories
    lease_expiries: int = 0
    #: `maybe` ids (enqueue failed without an answer) that were stored after all
    ambiguous_stored: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)
    audit: AuditReport | None = None
    #: per type ('' all types): (succeeded, failed, dead) by the job histories and by the
    #: broker's per-minute series (issue 18), where they differ; they must not
    series_mismatch: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = field(
        default_factory=dict)
    #: the series totals of the queue (all types), for the figures
    series: tuple[int, int, int] = (0, 0, 0)

    @property
    def lost(self) -> int:
        return len(self.missing) + len(self.unfinished)

    def problems(self) -> list[str]:
        out = []
        for name in ("missing", "unfinished", "bad_history", "unexplained", "stale_accepted"):
            ids: list[str] = getattr(self, name)
            if ids:
                out.append(f"{name}: {len(ids)} e.g. {ids[:5]}")
        busy = {k: v for k, v in self.leftovers.items() if v}
        if busy:
            out.append(f"work indexes not drained: {busy}")
        if self.audit is not None and not self.audit.ok:
            out.append(f"audit not clean: {self.audit!r}")
        if self.series_mismatch:
            out.append(f"series differ from the histories (history, series): "
                       f"{self.series_mismatch}")
        return out

    def assert_ok(self) -> None:
        problems = self.problems()
        assert not problems, "reconciliation failed:\n  " + "\n  ".join(problems)

    def figures(self) -> dict[str, Any]:
        return {
            "jobs": self.accepted, "succeeded": self.succeeded, "dead": self.dead,
            "lost": self.lost, "duplicated": len(self.duplicated),
            "executions": self.executions, "lease_expiries": self.lease_expiries,
            "series_succeeded_failed_dead": list(self.series),
        }


async def load_jobs(
    broker: RedisBroker, job_ids: Iterable[str]
) -> dict[str, tuple[Job, dict[str, str]] | None]:
    """Each job and its raw hash (for its lease `token`), None when it does not exist."""
    ids = list(job_ids)
    out: dict[str, tuple[Job, dict[str, str]] | None] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        pipe = broker.client.pipeline(transaction=False)
        for job_id in chunk:
            queue, uid = split_job_id(job_id)
            pipe.hgetall(broker.keys.queue(queue).job(uid))
        for job_id, raw in zip(chunk, await pipe.execute(), strict=True):
            if not raw:
                out[job_id] = None
                continue
            queue, uid = split_job_id(job_id)
            out[job_id] = (job_from_hash(queue, uid, raw), raw)
    return out


def _accepted_token(job: Job) -> str | None:
    result = job.result
    if isinstance(result, dict) and isinstance(result.get("token"), str):
        return str(result["token"])
    return None


def _counted_run(job: Job, raw: dict[str, str], done: list[Run]) -> Run | None:
    """The ledger run whose result the broker kept, or None if no run explains it.

    The fence: the result that counted must be the current lease holder's, so its token is
    the job's last lease token (`token`, kept on a succeeded job) and exactly one completed run
    carries it.
    Without a token (not recoverable in the handler) the delivery is matched by the attempt
    and worker of the history's `succeeded` entry instead.
    """
    token = _accepted_token(job)
    if token:
        matches = [r for r in done if r.token == token]
        return matches[0] if token == raw.get("token") and len(matches) == 1 else None
    succeeded = [h for h in job.history if h.outcome == "succeeded"]
    if not succeeded:
        return None
    last = succeeded[-1]
    matches = [r for r in done if (r.attempt, r.worker_id) == (last.attempt, last.worker)]
    return matches[-1] if matches else None


def _explained(run: Run, job: Job) -> bool:
    """A completed run that did not count as a success is fine only if its lease was lost
    (the broker's history shows that delivery (attempt, worker) ending in a lease expiry) or
    if its outcome was recorded as that delivery's failure (e.g. `result_too_large`)."""
    return any(
        h.attempt == run.attempt and h.worker == run.worker_id
        and (h.error_code == "lease_expired"
             or (h.error_code is not None and h.outcome in ("failed", "dead")))
        for h in job.history
    )


async def reconcile(
    broker: Broker,
    queue: str,
    accepted: Collection[str],
    runs: dict[str, list[Run]],
    *,
    maybe: Collection[str] = (),
) -> Reconciliation:
    """`accepted`: ids whose enqueue was acknowledged. `maybe`: ids whose enqueue failed
    without an answer (they may or may not exist; if they do, they must be finished too)."""
    assert isinstance(broker, RedisBroker), "the reconciliation reads Redis directly"
    rec = Reconciliation(queue=queue, accepted=len(accepted))
    loaded = await load_jobs(broker, [*accepted, *maybe])
    must = set(accepted)
    for job_id, entry in loaded.items():
        if entry is None:
            if job_id in must:
                rec.missing.append(job_id)
            continue
        job, raw = entry
        if job_id not in must:
            rec.ambiguous_stored += 1
        _check_job(rec, job, raw, runs.get(job_id, []))
    pipe = broker.client.pipeline(transaction=False)
    qk = broker.keys.queue(queue)
    for state in WORK_INDEXES:
        pipe.zcard(qk.index(state))
    counts = await pipe.execute()
    rec.leftovers = {str(s): int(c) for s, c in zip(WORK_INDEXES, counts, strict=True)}
    rec.audit = await broker.audit(queue)
    await _check_series(rec, broker, queue, [e[0] for e in loaded.values() if e is not None])
    return rec


#: history outcomes as the series count them (a lease that expired and was requeued is a
#: failed attempt); records set aside as corrupt_job are not counted
_KINDS = {"succeeded": 0, "failed": 1, "lease_expired": 1, "dead": 2}


async def _check_series(
    rec: Reconciliation, broker: Broker, queue: str, jobs: list[Job]
) -> None:
    """The broker's per-minute series, summed over the 7 days they keep (the test's key
    prefix holds nothing older), against what the job histories say happened: exactly."""
    expected: dict[str, list[int]] = {"": [0, 0, 0]}
    for job in jobs:
        if job.queue != queue:
            continue
        for entry in job.history:
            kind = _KINDS.get(entry.outcome)
            if kind is None or entry.error_code == "corrupt_job":
                continue
            for key in ("", job.type):
                expected.setdefault(key, [0, 0, 0])[kind] += 1
    for type_, want in expected.items():
        points = await broker.series(queue, SERIES_KEEP_MINUTES, type_ or None)
        got = (sum(p.succeeded for p in points), sum(p.failed for p in points),
               sum(p.dead for p in points))
        if type_ == "":
            rec.series = got
        if got != tuple(want):
            rec.series_mismatch[type_] = ((want[0], want[1], want[2]), got)


def _check_job(rec: Reconciliation, job: Job, raw: dict[str, str], runs: list[Run]) -> None:
    if job.state is JobState.SUCCEEDED:
        rec.succeeded += 1
    elif job.state is JobState.DEAD:
        rec.dead += 1
    else:
        rec.unfinished.append(job.id)
    outcomes = [h.outcome for h in job.history]
    rec.lease_expiries += sum(1 for h in job.history if h.error_code == "lease_expired")
    terminal = [i for i, o in enumerate(outcomes) if o in TERMINAL]
    if job.state in (JobState.SUCCEEDED, JobState.DEAD) and (
        len(terminal) != 1 or terminal[0] != len(outcomes) - 1
    ):
        rec.bad_history.append(job.id)

    done = [r for r in runs if r.event is Event.DONE]
    rec.executions += len(done)
    if len(done) > 1:
        rec.duplicated.append(job.id)
    counted: Run | None = None
    if job.state is JobState.SUCCEEDED:
        counted = _counted_run(job, raw, done)
        if counted is None:
            rec.stale_accepted.append(job.id)
    for run in done:
        if run is not counted and not _explained(run, job):
            rec.unexplained.append(f"{job.id} (attempt {run.attempt}, pid {run.pid})")


def redelivery_delays(
    runs: dict[str, list[Run]], victims: dict[int, float]
) -> list[float]:
    """For each run cut short by a fault (a START by a victim pid whose delivery did not
    count), seconds from the fault to the next delivery's START. `victims`: pid -> fault time
    (wall clock)."""
    delays = []
    for job_runs in runs.values():
        starts = [r for r in job_runs if r.event is Event.START]
        for run in starts:
            fault_at = victims.get(run.pid)
            if fault_at is None or run.at > fault_at:
                continue
            later = [r for r in starts if r.token_n > run.token_n and r.at >= fault_at]
            if later:
                delays.append(min(r.at for r in later) - fault_at)
    return delays


def summarise(delays: list[float]) -> dict[str, float | None]:
    if not delays:
        return {"recover_max_s": None, "recover_p50_s": None}
    return {
        "recover_max_s": round(max(delays), 3),
        "recover_p50_s": round(statistics.median(delays), 3),
    }
