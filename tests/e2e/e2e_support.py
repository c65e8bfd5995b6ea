"""Helpers of the end-to-end tests: a handle on one real `conveyor worker` process (a
`support.processes.ChildProcess` that knows its registry entry); a plain module: conftest and
test files import it by name.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.brokers.base import WorkerInfo
from conveyor.client import AsyncConveyor
from conveyor.jobs import Job
from tests.support.env import REDIS_URL
from tests.support.processes import ChildProcess, conveyor_env, worker_args

QUEUE = "e2e"
#: How long a worker may take to start (import, connect, register) on a slow machine.
START_TIMEOUT_S = 15.0


def outcomes(job: Job) -> list[str]:
    return [entry.outcome for entry in job.history]


@dataclass(eq=False)
class WorkerProcess(ChildProcess):
    """One `python -m conveyor worker` child, its log files and its registry entry."""

    info: WorkerInfo | None = None

    @property
    def worker_id(self) -> str:
        assert self.info is not None, f"{self.name} never registered"
        return self.info.id

    def is_me(self, info: WorkerInfo) -> bool:
        return info.pid == self.pid and info.host == socket.gethostname()


#: The `start_worker` fixture: `await start_worker(concurrency=2, grace_s=0.5)` returns a
#: registered worker process.
StartWorker = Callable[..., Awaitable[WorkerProcess]]


def spawn_worker(
    name: str, *, tmp_path: Path, prefix: str, queues: str, concurrency: int, lease_s: float,
    grace_s: float, app: str | None, pythonpath: Path | None, broker_url: str = REDIS_URL,
    args: Sequence[str] = (),
) -> WorkerProcess:
    env = conveyor_env({
        "CONVEYOR_BROKER_URL": broker_url,
        "CONVEYOR_KEY_PREFIX": prefix,
        "CONVEYOR_LEASE_S": str(lease_s),
        "CONVEYOR_REAP_INTERVAL_S": "0.2",
        "CONVEYOR_SHUTDOWN_GRACE_S": str(grace_s),
        "CONVEYOR_LOG_FORMAT": "json",
        "CONVEYOR_LOG_LEVEL": "INFO",
    }, pythonpath=[pythonpath] if pythonpath is not None else [])
    return WorkerProcess.launch(name, worker_args(queues, concurrency, app, args), env=env,
                                log_dir=tmp_path)


async def assert_clean(client: AsyncConveyor, queue: str = QUEUE) -> None:
    """Invariant 1 at the end of a scenario: every job in exactly one state index."""
    report = await client.broker.audit(queue)
    assert report.ok, f"audit of {queue!r} is not clean: {report!r}"
