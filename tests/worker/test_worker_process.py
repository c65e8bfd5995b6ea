"""`run_worker` as a real process: serves jobs, exits 0 on SIGTERM after releasing what it
holds, and exits 1 when it cannot start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState
from tests.support.env import REDIS_URL
from tests.support.waits import wait_for_state
from tests.worker.worker_helpers import QUEUE

SCRIPT = (
    "import sys\n"
    "from conveyor.settings import Settings\n"
    "from conveyor.worker import run_worker\n"
    "sys.exit(run_worker(queues=sys.argv[1].split(','), concurrency=2,\n"
    "                    app=sys.argv[2] or None, settings=Settings()))\n"
)


async def start(prefix: str, app: str = "", **env: str) -> asyncio.subprocess.Process:
    full_env = {
        **os.environ,
        "CONVEYOR_BROKER_URL": REDIS_URL,
        "CONVEYOR_KEY_PREFIX": prefix,
        "CONVEYOR_LOG_FORMAT": "json",
        "CONVEYOR_REAP_INTERVAL_S": "0.2",
        **env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, QUEUE, app,
        env=full_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process, *, twice: bool = False) -> bytes:
    """SIGTERM (twice: a second one 0.2 s later), then collect stderr; kill if it hangs."""
    proc.send_signal(signal.SIGTERM)
    if twice:
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    return stderr


def events(stderr: bytes) -> list[str]:
    return [json.loads(line)["event"] for line in stderr.decode().splitlines() if line.strip()]


async def test_process_runs_jobs_and_stops_on_sigterm(
    prefix: str, client: AsyncConveyor
) -> None:
    client.validate_types = False  # the built-in `fake` type lives in the default registry
    job = await client.enqueue("fake", {"result": "hi"}, queue=QUEUE, max_attempts=1)
    proc = await start(prefix, CONVEYOR_SHUTDOWN_GRACE_S="0.5")
    try:
        done = await wait_for_state(client, job.id, {JobState.SUCCEEDED, JobState.DEAD})
        assert done.result == "hi"
        long = await client.enqueue("fake", {"duration_ms": 60_000}, queue=QUEUE)
        await wait_for_state(client, long.id, {JobState.RUNNING})
    finally:
        stderr = await stop(proc)
    assert proc.returncode == 0, stderr.decode()
    seen = events(stderr)
    assert "job_succeeded" in seen and "worker_stopped" in seen
    # The 60 s job outlived the 0.5 s grace period: released, its attempt refunded.
    after = await client.get(long.id)
    assert after.state is JobState.QUEUED
    assert after.attempts == 0


async def test_second_sigterm_releases_at_once(prefix: str, client: AsyncConveyor) -> None:
    client.validate_types = False
    proc = await start(prefix, CONVEYOR_SHUTDOWN_GRACE_S="60")
    try:
        long = await client.enqueue("fake", {"duration_ms": 60_000}, queue=QUEUE)
        await wait_for_state(client, long.id, {JobState.RUNNING})
    finally:
        stderr = await stop(proc, twice=True)
    assert proc.returncode == 0, stderr.decode()
    after = await client.get(long.id)
    assert after.state is JobState.QUEUED
    assert after.attempts == 0


async def test_bad_app_module_exits_1(prefix: str) -> None:
    proc = await start(prefix, app="no_such_module_for_conveyor")
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "worker_not_started" in events(stderr)
