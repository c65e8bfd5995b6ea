"""Helpers of the chaos tests: real `conveyor worker` processes running `chaos_app`, a fleet
that keeps N of them alive, bounded polls, and the figures each scenario prints.

A plain module (no package): the conftest and the test files import it by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from conveyor.client import AsyncConveyor, JobRequest
from tests.chaos.ledger import CRASH_ENV, LEDGER_ENV
from tests.support.processes import ChildProcess, conveyor_env, worker_args
from tests.support.waits import wait_until

T = TypeVar("T")

#: on the workers' PYTHONPATH, so `--app tests.chaos.chaos_app` imports
REPO = Path(__file__).resolve().parents[2]
APP = "tests.chaos.chaos_app"
QUEUE = "chaos"
#: The job types of chaos_app (not imported here: this process must not register them).
WORK_TYPE = "chaos.work"
POISON_TYPE = "chaos.poison"
POLL_S = 0.02
#: A worker's start (import, connect, register) on a slow, busy machine.
START_TIMEOUT_S = 20.0
#: Teardown: how long after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 3.0
FIGURES_MARK = "CHAOS-FIGURES"


@dataclass(frozen=True)
class Scale:
    """A scenario's size: `scale.of(short, long)` picks the value for this run."""

    long: bool

    def of(self, short: T, long: T) -> T:
        return long if self.long else short


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one worker; `replace(spec, concurrency=...)` for a variant."""

    broker_url: str
    prefix: str
    ledger: Path
    queues: str = QUEUE
    concurrency: int = 4
    lease_s: float = 1.0
    reap_s: float = 0.2
    grace_s: float = 5.0
    crash_hooks: bool = False
    log_level: str = "INFO"
    #: further CONVEYOR_* settings, as (name, value) pairs
    extra_env: tuple[tuple[str, str], ...] = ()

    def env(self) -> dict[str, str]:
        settings = {
            "CONVEYOR_BROKER_URL": self.broker_url,
            "CONVEYOR_KEY_PREFIX": self.prefix,
            "CONVEYOR_LEASE_S": str(self.lease_s),
            "CONVEYOR_REAP_INTERVAL_S": str(self.reap_s),
            "CONVEYOR_SHUTDOWN_GRACE_S": str(self.grace_s),
            "CONVEYOR_LOG_FORMAT": "json",
            "CONVEYOR_LOG_LEVEL": self.log_level,
            LEDGER_ENV: str(self.ledger),
            **({CRASH_ENV: "1"} if self.crash_hooks else {}),
            **dict(self.extra_env),
        }
        return conveyor_env(settings, pythonpath=[REPO], drop={CRASH_ENV})


@dataclass(eq=False, kw_only=True)
class WorkerProcess(ChildProcess):
    """One `python -m conveyor worker --app tests.chaos.chaos_app` child and its log files."""

    spec: WorkerSpec
    worker_id: str = ""
    killed_at: float | None = None

    def kill(self) -> None:
        """SIGKILL, remembering the wall-clock time it was sent (the recovery figures)."""
        self.killed_at = time.time()
        super().kill()

    def logs(self, tail: int | None = 6000) -> str:
        return super().logs(tail)

    def has_started(self) -> bool:
        """The worker logged `worker_started` (it had registered); remembers its id."""
        if not self.worker_id:
            for event in self.events("worker_started"):
                self.worker_id = str(event.get("worker_id", "?"))
        return bool(self.worker_id)

    async def wait_started(self, timeout_s: float = START_TIMEOUT_S) -> WorkerProcess:
        async def started() -> bool:
            if self.has_started():
                return True
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before starting\n"
                    + self.logs()
                )
            return False

        await wait_until(started, f"{self.name} to start", timeout_s)
        return self


def spawn_worker(name: str, spec: WorkerSpec, log_dir: Path) -> WorkerProcess:
    return WorkerProcess.launch(
        name, worker_args(spec.queues, spec.concurrency, APP), env=spec.env(),
        log_dir=log_dir, spec=spec,
    )


class Workers:
    """Starts workers and remembers every one, so teardown stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.all: list[WorkerProcess] = []

    async def start(self, spec: WorkerSpec, *, wait: bool = True) -> WorkerProcess:
        worker = spawn_worker(f"worker{len(self.all) + 1}", spec, self.log_dir)
        self.all.append(worker)
        return await worker.wait_started() if wait else worker

    async def stop_all(self) -> None:
        await asyncio.gather(*(w.stop(STOP_TIMEOUT_S) for w in self.all))

    def dump_logs(self) -> str:
        return "\n".join(w.logs(tail=3000) for w in self.all)


class Fleet:
    """Keeps `size` workers of one spec alive: whoever exits is replaced (the supervisor a
    real deployment has). `kill_one` is the fault; the keeper's restarts are the recovery."""

    def __init__(self, workers: Workers, spec: WorkerSpec, size: int) -> None:
        self.workers = workers
        self.spec = spec
        self.size = size
        self.members: list[WorkerProcess] = []
        self.kills: list[WorkerProcess] = []
        self.exits: list[tuple[WorkerProcess, int]] = []
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.members = list(await asyncio.gather(
            *(self.workers.start(self.spec) for _ in range(self.size))
        ))
        self._keeper = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        while True:
            for i, member in enumerate(self.members):
                code = member.proc.poll()
                if code is not None:
                    self.exits.append((member, code))
                    self.members[i] = await self.workers.start(self.spec, wait=False)
            await asyncio.sleep(POLL_S)

    async def kill_one(self, pick: Callable[[list[WorkerProcess]], WorkerProcess]) -> None:
        """SIGKILL one live, started worker (the keeper restarts it)."""

        async def started() -> list[WorkerProcess] | None:
            ready = [m for m in self.members if m.running() and m.has_started()]
            return ready or None

        victim = pick(await wait_until(started, "a started worker to kill", START_TIMEOUT_S))
        victim.kill()
        self.kills.append(victim)

    async def stop_keeping(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None

    def restarts(self) -> int:
        return len(self.exits)


def with_spec(spec: WorkerSpec, **changes: Any) -> WorkerSpec:
    return replace(spec, **changes)


@dataclass
class Figures:
    """Prints one `CHAOS-FIGURES {json}` line per scenario; appends it to a file if asked."""

    path: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, scenario: str, **values: Any) -> dict[str, Any]:
        row = {"scenario": scenario, **values}
        self.rows.append(row)
        line = json.dumps(row, sort_keys=False, default=str)
        print(f"\n{FIGURES_MARK} {line}")
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(line + "\n")
        return row


async def enqueue_work(
    client: AsyncConveyor, count: int, ms: tuple[int, int], *, rng: random.Random,
    max_attempts: int = 20, queue: str = QUEUE, **payload: Any,
) -> list[str]:
    """`count` chaos.work jobs of `ms` (a range) each; returns the acknowledged ids."""
    requests = [
        JobRequest(WORK_TYPE, {"ms": rng.randint(*ms), **payload}, queue,
                   max_attempts=max_attempts)
        for _ in range(count)
    ]
    results = await client.enqueue_many(requests)
    assert all(r.created for r in results)
    return [r.job_id for r in results]


async def wait_drained(
    client: AsyncConveyor, total: int, timeout_s: float, queue: str = QUEUE
) -> dict[str, int]:
    """Until `total` jobs are finished and nothing is queued, running or scheduled."""

    async def drained() -> dict[str, int] | None:
        counts = (await client.stats([queue]))[queue]
        done = counts["succeeded"] + counts["dead"] >= total
        idle = not (counts["queued"] or counts["running"] or counts["scheduled"])
        return counts if done and idle else None

    try:
        return await wait_until(drained, f"{total} jobs to finish", timeout_s)
    except AssertionError as exc:
        counts = (await client.stats([queue]))[queue]
        raise AssertionError(f"{exc}; counts: {counts}") from None
