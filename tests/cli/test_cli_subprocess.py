"""The command line as users run it: real processes (`conveyor` script, `python -m conveyor`)
against the real Redis, checking output, exit codes, `--app` imports from the cwd and a worker
that runs jobs and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.env import REDIS_URL

SCRIPT = str(Path(sys.executable).parent / "conveyor")
MODULE = [sys.executable, "-m", "conveyor"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}


def _cmd(prefix: str, *args: str, module: bool = False) -> list[str]:
    head = MODULE if module else [SCRIPT]
    return [*head, "--broker-url", REDIS_URL, "--key-prefix", prefix, *args]


def _run(
    prefix: str, *args: str, module: bool = False, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(prefix, *args, module=module), capture_output=True, text=True, env=_env(),
        cwd=cwd, timeout=60, check=False,
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_enqueue_show_and_exit_codes(prefix: str) -> None:
    enq = _run(prefix, "enqueue", "fake", "--payload", '{"result": "hi"}')
    assert enq.returncode == 0, enq.stderr
    job_id, state = enq.stdout.split()
    assert state == "queued"

    shown = _run(prefix, "--json", "job", "show", job_id, module=True)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert (doc["id"], doc["state"], doc["payload"]["result"]) == (job_id, "queued", "hi")

    bad_json = _run(prefix, "enqueue", "fake", "--payload", "{oops")
    assert bad_json.returncode == 2 and "invalid JSON" in bad_json.stderr

    unknown = _run(prefix, "enqueue", "cvt.unknown")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown_job_type: ")

    missing = _run(prefix, "job", "show", "default:" + "f" * 32, module=True)
    assert missing.returncode == 1 and missing.stderr.startswith("error: job_not_found: ")

    bad_id = _run(prefix, "job", "show", "not-an-id")
    assert bad_id.returncode == 2 and "is not a job id" in bad_id.stderr


def test_app_modules_are_imported_from_the_cwd(prefix: str, tmp_path: Path) -> None:
    name = f"cvt_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from pydantic import BaseModel\n"
        "from conveyor.handlers import handler\n\n"
        "class Greeting(BaseModel):\n    who: str\n\n"
        f"@handler({name!r}, payload=Greeting, max_attempts=4)\n"
        "def greet(payload: Greeting) -> str:\n    return 'hello ' + payload.who\n"
    )
    good = _run(prefix, "--json", "enqueue", name, "--payload", '{"who": "ada"}',
                "--app", name, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["max_attempts"] == 4

    invalid = _run(prefix, "enqueue", name, "--payload", '{"who": 1}', "--app", name,
                   cwd=tmp_path)
    assert invalid.returncode == 2
    expected = f"error: validation_error: invalid payload for job type '{name}'"
    assert invalid.stderr.startswith(expected)

    without_app = _run(prefix, "enqueue", name, "--payload", '{"who": "ada"}', cwd=tmp_path)
    assert without_app.returncode == 2 and "unknown_job_type" in without_app.stderr


def test_worker_runs_seeded_jobs_and_stops_on_sigterm(prefix: str) -> None:
    seeded = _run(prefix, "seed", "--count", "50", "--batch", "20", "--queue", "work")
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stdout.startswith("enqueued 50 fake job(s) to work")

    def stats() -> dict[str, int]:
        out = _run(prefix, "--json", "stats", "--queue", "work")
        assert out.returncode == 0, out.stderr
        counts: dict[str, int] = json.loads(out.stdout)["work"]
        return counts

    def workers() -> list[dict[str, object]]:
        out = _run(prefix, "--json", "workers")
        assert out.returncode == 0, out.stderr
        listed: list[dict[str, object]] = json.loads(out.stdout)
        return listed

    proc = subprocess.Popen(
        _cmd(prefix, "worker", "--queues", "work", "--concurrency", "4", "--lease", "10s"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        _wait_for(lambda: stats()["succeeded"] == 50, 60, "50 jobs to succeed")
        _wait_for(lambda: len(workers()) == 1, 30, "the worker to register")
        (listed,) = workers()
        assert listed["pid"] == proc.pid and listed["queues"] == ["work"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert stats() == {"scheduled": 0, "queued": 0, "running": 0, "succeeded": 50, "dead": 0,
                       "cancelled": 0}
