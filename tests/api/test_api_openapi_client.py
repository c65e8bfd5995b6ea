"""A client generated from the live server's `/openapi.json` by a real generator
(openapi-python-client, pinned in the `dev` extra) runs the job flow against that server:
`conveyor dev` (API + worker) on Redis with a key.

The client is generated during the test, from the document the server serves at that moment
(never a committed copy that could drift from it); generating takes a second or two.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.support.env import REDIS_URL, new_prefix
from tests.support.keys import delete_prefix
from tests.support.processes import free_port

BIN = Path(sys.executable).parent
KEY = "client-key"
QUEUE = "gen"

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`conveyor dev` on a free port, its own key prefix, a key; stopped by its pid."""
    prefix = new_prefix()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_BROKER_URL=REDIS_URL, CONVEYOR_KEY_PREFIX=prefix,
               CONVEYOR_API_KEYS=KEY, CONVEYOR_REAP_INTERVAL_S="0.2",
               CONVEYOR_LOG_FORMAT="json")
    log = (tmp_path / "dev.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "conveyor"), "dev", "--port", str(port), "--queues", f"default,{QUEUE}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "conveyor dev did not answer /readyz"
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        asyncio.run(delete_prefix(prefix))


def generate(base: str, out: Path) -> ModuleType:
    """Generate the client package from the served document and import it."""
    name = f"conveyor_client_{uuid.uuid4().hex[:8]}"
    (out / "openapi.json").write_bytes(httpx.get(f"{base}/openapi.json").content)
    (out / "config.yml").write_text(f"package_name_override: {name}\npost_hooks: []\n")
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(out / "openapi.json"),
         "--output-path", str(out / name), "--meta", "none", "--config", str(out / "config.yml")],
        capture_output=True, text=True, timeout=120, cwd=out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr  # all of it
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(out))


def wait_for(probe: Any, what: str, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_generated_client_runs_the_job_flow(server: str, tmp_path: Path) -> None:
    pkg = generate(server, tmp_path)
    models = importlib.import_module(f"{pkg.__name__}.models")
    with (pkg.AuthenticatedClient(base_url=server, token=KEY) as client,
          pkg.AuthenticatedClient(base_url=server, token="wrong") as anonymous):
        flow(Operations(pkg.__name__), models, client, anonymous)


class Operations:
    """`ops.jobs.get_job.sync(...)`: the generated modules, by tag and operation."""

    def __init__(self, package: str) -> None:
        self.package = package

    def __getattr__(self, tag: str) -> Any:
        package = self.package

        class Tag:
            def __getattr__(self, op: str) -> ModuleType:
                return importlib.import_module(f"{package}.api.{tag}.{op}")

        return Tag()


def flow(ops: Any, models: Any, client: Any, anonymous: Any) -> None:
    # enqueue: a typed body per job type; one succeeds, one dies at once
    ok = ops.jobs.enqueue_job.sync(client=client, body=models.FakeJobIn(
        type_="fake", queue=QUEUE, payload=models.FakePayload(result={"n": 1})))
    assert isinstance(ok, models.Job) and ok.state == models.JobState.QUEUED
    doomed = ops.jobs.enqueue_job.sync(client=client, body=models.FakeJobIn(
        type_="fake", queue=QUEUE, payload=models.FakePayload(permanent=True)))
    assert isinstance(doomed, models.Job)

    # get: the worker of `conveyor dev` runs both
    def state_of(job_id: str, state: Any) -> Any:
        job = ops.jobs.get_job.sync(id=job_id, client=client)
        return job if job.state == state else None

    done = wait_for(lambda: state_of(ok.id, models.JobState.SUCCEEDED), "the job to succeed")
    assert done.result == {"n": 1} and done.attempts == 1 and done.history
    dead = wait_for(lambda: state_of(doomed.id, models.JobState.DEAD), "the job to die")
    assert dead.last_error.code == "permanent_failure"

    # list, and the DLQ listing
    page = ops.jobs.list_jobs.sync(client=client, queue=QUEUE, limit=10)
    assert isinstance(page, models.JobPage)
    assert {j.id for j in page.items} == {ok.id, doomed.id} and page.next_cursor is None
    dead_page = ops.dlq.list_dead_jobs.sync(client=client, queue=QUEUE)
    assert [j.id for j in dead_page.items] == [doomed.id]
    preview = ops.dlq.redrive_dead_jobs.sync(client=client, body=models.RedriveByIds(
        ids=[doomed.id], dry_run=True))
    assert isinstance(preview, models.RedriveDryRunOut) and preview.would_move == 1
    counts = ops.queues.get_queue.sync(name=QUEUE, client=client).counts
    assert (counts.succeeded, counts.dead) == (1, 1)

    # errors come back typed, with the ErrorCode enum
    missing = ops.jobs.get_job.sync_detailed(id=f"{QUEUE}:{'0' * 32}", client=client)
    assert missing.status_code == 404
    assert missing.parsed.error.code == models.ErrorCode.JOB_NOT_FOUND
    refused = ops.jobs.list_jobs.sync_detailed(client=anonymous)
    assert refused.status_code == 401
    assert refused.parsed.error.code == models.ErrorCode.UNAUTHORIZED
