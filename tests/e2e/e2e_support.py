"""Helpers of the end-to-end tests: a handle on one real `conveyor worker` process, and polls
with bounded deadlines (a plain module: conftest and test files import it by name).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from conveyor.brokers.base import WorkerInfo
from conveyor.client import AsyncConveyor
from conveyor.jobs import Job, JobState

T = TypeVar("T")

REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "e2e"
POLL_S = 0.02
#: How long a worker may take to start (import, connect, register) on a slow machine.
START_TIMEOUT_S = 15.0
#: How long teardown waits after SIGTERM before it sends SIGKILL.
STOP_TIMEOUT_S = 5.0


async def wait_until(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 10.0
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` past the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def wait_for_state(
    client: AsyncConveyor, job_id: str, states: Collection[JobState], timeout_s: float = 10.0
) -> Job:
    """Poll until the job reaches one of `states`; fail with the job as last seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        job = await client.get(job_id)
        if job.state in states:
            return job
        if loop.time() > deadline:
            raise AssertionError(
                f"job {job_id} still {job.state} after {timeout_s}s (wanted "
                f"{sorted(str(s) for s in states)}): {job.model_dump_json(indent=1)}"
            )
        await asyncio.sleep(POLL_S)


def outcomes(job: Job) -> list[str]:
    return [entry.outcome for entry in job.history]


@dataclass(eq=False)
class WorkerProcess:
    """One `python -m conveyor worker` child, its log files and its registry entry."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    files: list[IO[bytes]] = field(default_factory=list)
    info: WorkerInfo | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def worker_id(self) -> str:
        assert self.info is not None, f"{self.name} never registered"
        return self.info.id

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.running():
            self.proc.send_signal(sig)

    def terminate(self) -> None:
        self.send(signal.SIGTERM)

    def kill(self) -> None:
        self.send(signal.SIGKILL)

    async def wait_exit(self, timeout_s: float) -> int:
        """The exit code (negative: killed by that signal); fails with the logs if late."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (code := self.proc.poll()) is None:
            if loop.time() > deadline:
                raise AssertionError(
                    f"{self.name} (pid {self.pid}) still running after {timeout_s}s\n"
                    + self.logs()
                )
            await asyncio.sleep(POLL_S)
        return code

    def is_me(self, info: WorkerInfo) -> bool:
        return info.pid == self.pid and info.host == socket.gethostname()

    def logs(self) -> str:
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"----- {self.name} (pid {self.pid}) {label} -----\n{text}")
        return "\n".join(parts)

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log records on stderr (anything else, e.g. a raw traceback, is skipped)."""
        events = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def error_lines(self) -> list[str]:
        """Error-level records, and any stderr line that is not a JSON record (a traceback)."""
        bad = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            if not isinstance(record, dict) or record.get("level") in ("ERROR", "CRITICAL"):
                bad.append(line)
        return bad

    def close_files(self) -> None:
        for f in self.files:
            f.close()
        self.files.clear()


#: The `start_worker` fixture: `await start_worker(concurrency=2, grace_s=0.5)` returns a
#: registered worker process.
StartWorker = Callable[..., Awaitable[WorkerProcess]]


def spawn_worker(
    name: str, *, tmp_path: Path, prefix: str, queues: str, concurrency: int, lease_s: float,
    grace_s: float, app: str | None, pythonpath: Path | None, broker_url: str = REDIS_URL,
    args: Sequence[str] = (),
) -> WorkerProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update({
        "CONVEYOR_BROKER_URL": broker_url,
        "CONVEYOR_KEY_PREFIX": prefix,
        "CONVEYOR_LEASE_S": str(lease_s),
        "CONVEYOR_REAP_INTERVAL_S": "0.2",
        "CONVEYOR_SHUTDOWN_GRACE_S": str(grace_s),
        "CONVEYOR_LOG_FORMAT": "json",
        "CONVEYOR_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    })
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p
        )
    cmd = [sys.executable, "-m", "conveyor", "worker", "--queues", queues,
           "--concurrency", str(concurrency)]
    if app is not None:
        cmd += ["--app", app]
    cmd += list(args)
    stdout_path, stderr_path = tmp_path / f"{name}.stdout", tmp_path / f"{name}.stderr"
    out, err = stdout_path.open("wb"), stderr_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                            env=env, cwd=tmp_path)
    return WorkerProcess(name, proc, stdout_path, stderr_path, files=[out, err])


async def assert_clean(client: AsyncConveyor, queue: str = QUEUE) -> None:
    """Invariant 1 at the end of a scenario: every job in exactly one state index."""
    report = await client.broker.audit(queue)
    assert report.ok, f"audit of {queue!r} is not clean: {report!r}"
