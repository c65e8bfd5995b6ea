"""Logs as an operator sees them, in real processes: coloured text on a terminal (a pty), JSON
on a pipe, `--log-format` / CONVEYOR_LOG_FORMAT to choose, a failed job's class (and, in JSON,
traceback) on its line, and `conveyor dev` on a busy port: one clear line, exit code 1."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

from tests.cli.proc_support import ANSI, run, start
from tests.support.env import REDIS_URL
from tests.support.processes import free_port

BANNER_END = "Ctrl-C to stop"


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_dev_on_a_terminal_logs_coloured_text(tmp_path: Path) -> None:
    with start("dev", "--port", str(free_port()), tty=True, cwd=tmp_path) as dev:
        dev.wait_for(lambda text: BANNER_END in text)
        assert dev.stop() == 0
    before_banner = dev.text.split("Conveyor dev:")[0]
    lines = [line for line in before_banner.splitlines() if line.strip()]
    assert lines and not any(line.lstrip().startswith("{") for line in lines)
    assert ANSI in before_banner
    plain = re.sub(r"\x1b\[[0-9;]*m", "", before_banner)
    assert re.search(r"\[INFO *\] conveyor\.dev: broker_selected broker_url=sqlite:///conveyor\.db",
                     plain)
    assert re.search(r"\[INFO *\] uvicorn\.error: ", plain)  # a library logger, same format


def test_dev_on_a_pipe_logs_json(tmp_path: Path) -> None:
    with start("dev", "--port", str(free_port()), tty=False, cwd=tmp_path) as dev:
        dev.wait_for(lambda text: BANNER_END in text)
        assert dev.stop() == 0
    assert ANSI not in dev.text
    events = _json_lines(dev.text)
    using = next(e for e in events if e["event"] == "broker_selected")
    assert using["broker_path"] == str(tmp_path / "conveyor.db")
    assert {e["logger"] for e in events} >= {"conveyor.dev", "uvicorn.error", "conveyor.worker"}


def test_log_format_option_and_setting_win_over_the_terminal(prefix: str) -> None:
    args = ("--broker-url", REDIS_URL, "--key-prefix", prefix, "worker")
    with start(*args, "--log-format", "json", tty=True) as worker:
        worker.wait_for(lambda text: "worker_started" in text)
        assert worker.stop() == 0
    assert ANSI not in worker.text
    assert "worker_started" in {e["event"] for e in _json_lines(worker.text)}

    with start(*args, tty=False, CONVEYOR_LOG_FORMAT="text") as worker:
        worker.wait_for(lambda text: "worker_started" in text)
        assert worker.stop() == 0
    assert ANSI not in worker.text and "{" not in worker.text.split("worker_started")[0]
    assert re.search(r"\[INFO *\] conveyor\.worker: worker_started ", worker.text)


def _enqueue_permanent_failure(prefix: str) -> None:
    res = run("--broker-url", REDIS_URL, "--key-prefix", prefix, "enqueue", "fake",
              "--payload", '{"permanent": true}')
    assert res.returncode == 0, res.stderr


def test_a_failed_job_line_names_its_exception(prefix: str) -> None:
    _enqueue_permanent_failure(prefix)
    args = ("--broker-url", REDIS_URL, "--key-prefix", prefix, "worker")
    with start(*args, tty=False) as worker:
        worker.wait_for(lambda text: '"job_failed"' in text)
        assert worker.stop() == 0
    failed = next(e for e in _json_lines(worker.text) if e["event"] == "job_failed")
    assert failed["exc_type"] == "conveyor.errors.PermanentError"
    assert failed["exc"].startswith("Traceback (most recent call last):")
    assert failed["exc"].endswith("conveyor.errors.PermanentError: fake permanent failure")
    assert failed["job_type"] == "fake" and failed["job_id"].startswith("default:")

    _enqueue_permanent_failure(prefix)
    with start(*args, tty=True) as worker:
        worker.wait_for(lambda text: "job_failed" in text)
        assert worker.stop() == 0
    [line] = [ln for ln in worker.text.splitlines() if "job_failed" in ln]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert "exc_type=conveyor.errors.PermanentError" in plain and "job_type=fake" in plain
    assert "Traceback" not in worker.text  # one line: the traceback is in the job's history


def test_dev_on_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with start("dev", "--port", str(port), tty=False, cwd=tmp_path) as dev:
            assert dev.finish() == 1
    assert "Traceback" not in dev.text and "Task exception" not in dev.text
    errors = [e for e in _json_lines(dev.text) if e["level"] == "ERROR"]
    assert [(e["event"], e["port"], e["reason"]) for e in errors] == [
        ("devserver_listen_failed", port, "address already in use")]
    assert "Conveyor dev:" not in dev.text
    assert not (tmp_path / "conveyor.db").exists()  # nothing started, nothing created
