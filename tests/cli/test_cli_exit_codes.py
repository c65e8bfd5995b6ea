"""The README's exit codes, in real processes, one case per class of outcome: 0 ok, 1 a
failure (broker down or refusing, no such job, no SQLite file, a busy port, a confirmation
refused), 2 bad usage (bad option, setting or --app module). Never another code, never a
traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.proc_support import SCRIPT, env, run
from tests.support.env import REDIS_URL
from tests.support.processes import free_port

DB_OUT_OF_RANGE = "redis://127.0.0.1:6379/99999"
CASES: list[tuple[str, list[str], dict[str, str], int]] = [
    ("ok", ["stats"], {}, 0),
    ("usage-option", ["enqueue", "fake", "--priority", "high"], {}, 2),
    ("usage-setting", ["stats"], {"CONVEYOR_QUEUE_RETENTION_S": "{bad"}, 2),
    ("usage-app", ["worker", "--app", "no_such_module_cvt"], {}, 2),
    ("usage-app-dev", ["dev", "--port", "PORT", "--app", "no_such_module_cvt"], {}, 2),
    ("usage-url", ["worker"], {"CONVEYOR_BROKER_URL": "redis://127.0.0.1:port/0"}, 2),
    ("failure-unreachable", ["--broker-url", "redis://127.0.0.1:1/0", "stats"], {}, 1),
    ("failure-not-found", ["job", "show", "default:" + "0" * 32], {}, 1),
    ("failure-refused-confirmation", ["dlq", "purge", "--all"], {}, 1),
    ("failure-redis-refuses-worker", ["worker"], {"CONVEYOR_BROKER_URL": DB_OUT_OF_RANGE}, 1),
    ("failure-api-cannot-start", ["api", "--port", "PORT"],
     {"CONVEYOR_BROKER_URL": DB_OUT_OF_RANGE}, 1),  # uvicorn exits 3 here
    ("failure-api-busy-port", ["api", "--port", "BUSY"], {}, 1),
    ("failure-dev-busy-port", ["dev", "--port", "BUSY"], {}, 1),
    ("failure-no-sqlite-file", ["stats"], {"CONVEYOR_BROKER_URL": "sqlite:///none.db"}, 1),
]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "env", "code"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_exit_code(
    prefix: str, tmp_path: Path, busy_port: int, args: list[str], env: dict[str, str],
    code: int,
) -> None:
    ports = {"PORT": str(free_port()), "BUSY": str(busy_port)}
    args = [ports.get(a, a) for a in args]
    head = [] if "CONVEYOR_BROKER_URL" in env else ["--broker-url", REDIS_URL]
    settings: dict[str, Any] = env  # CONVEYOR_* names: never run()'s cwd or timeout
    res = run(*head, "--key-prefix", prefix, *args, cwd=tmp_path, **settings)
    assert res.returncode == code, res.stderr
    # no raw traceback (a JSON log line may quote one: uvicorn's "application startup
    # failed" event carries the API lifespan's)
    lines = (res.stdout + res.stderr).splitlines()
    assert not any(line.startswith(("Traceback", "  File ")) for line in lines), res.stderr
    if code:
        assert res.stderr.strip(), "a failure says why"
    assert list(tmp_path.iterdir()) == []  # nothing left in the working directory


def test_a_closed_pipe_ends_quietly(prefix: str) -> None:
    """`conveyor --json jobs list | true`: the reader is gone before the first write; no
    internal_error, no traceback."""
    seeded = run("--broker-url", REDIS_URL, "--key-prefix", prefix, "seed", "-n", "100")
    assert seeded.returncode == 0, seeded.stderr
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        proc = subprocess.run(
            [SCRIPT, "--broker-url", REDIS_URL, "--key-prefix", prefix, "--json", "jobs",
             "list"], stdout=write_fd, stderr=subprocess.PIPE, env=env(),
            stdin=subprocess.DEVNULL, timeout=60, check=False, text=True,
        )
    finally:
        os.close(write_fd)
    assert proc.returncode == 1, proc.stderr
    assert "internal_error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('{"broker":')
