"""Structured logging: one JSON (or text) line per event, job fields bound by context."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.logging import (
    JobContextFilter,
    JobLogger,
    bind_job,
    configure_logging,
    current_job_fields,
    get_logger,
    job_context,
    unbind_job,
)

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def root_state() -> Iterator[None]:
    """configure_logging changes the root logger: put it back as pytest left it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


@pytest.fixture
def stream(root_state: None) -> io.StringIO:
    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out)
    return out


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """This test's lines only (asyncio, for one, logs at DEBUG too)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"].startswith(("cvt.", "some."))]


def test_json_line_shape(stream: io.StringIO) -> None:
    get_logger("cvt.shape").info("job %s done", "x", extra={"queue": "q1", "n": 3})
    [line] = _lines(stream)
    assert TS_RE.match(line["ts"])
    assert line["level"] == "INFO"
    assert line["logger"] == "cvt.shape"
    assert line["event"] == "job x done"
    assert line["queue"] == "q1" and line["n"] == 3
    assert "job_id" not in line


def test_job_fields_inside_the_context_only(stream: io.StringIO) -> None:
    log = get_logger("cvt.ctx")
    log.info("before")
    with job_context("default:01ABC", "report.build", attempt=2):
        log.info("inside")
        logging.getLogger("some.handler.lib").warning("from any logger")
    log.info("after")
    before, inside, other, after = _lines(stream)
    assert "job_id" not in before and "job_type" not in before
    for line in (inside, other):
        assert line["job_id"] == "default:01ABC"
        assert line["job_type"] == "report.build"
        assert line["attempt"] == 2
    assert "job_id" not in after and "attempt" not in after


async def test_job_fields_reach_worker_threads(stream: io.StringIO) -> None:
    log = get_logger("cvt.thread")
    thread_names: list[str] = []

    def sync_handler(tag: str) -> None:
        thread_names.append(threading.current_thread().name)
        log.info("in thread", extra={"tag": tag})

    with job_context("default:01T", "sync.job"):
        await asyncio.to_thread(sync_handler, "to_thread")
        ctx = contextvars.copy_context()
        await asyncio.get_running_loop().run_in_executor(None, ctx.run, sync_handler, "executor")
    await asyncio.to_thread(sync_handler, "outside")

    main = threading.current_thread().name
    assert thread_names and all(name != main for name in thread_names)
    by_tag = {line["tag"]: line for line in _lines(stream)}
    assert by_tag["to_thread"]["job_id"] == "default:01T"
    assert by_tag["executor"]["job_type"] == "sync.job"
    assert "job_id" not in by_tag["outside"]


async def test_concurrent_tasks_keep_their_own_job(stream: io.StringIO) -> None:
    log = get_logger("cvt.tasks")

    async def run(job_id: str) -> None:
        with job_context(job_id, "fake"):
            await asyncio.sleep(0)
            log.info("tick", extra={"who": job_id})

    await asyncio.gather(*(run(f"q:{n}") for n in range(5)))
    lines = _lines(stream)
    assert len(lines) == 5
    assert all(line["job_id"] == line["who"] for line in lines)


def test_nested_contexts_and_tokens(stream: io.StringIO) -> None:
    token = bind_job("q:outer", "t1")
    try:
        with job_context("q:inner", "t2"):
            assert current_job_fields()["job_id"] == "q:inner"
        assert current_job_fields()["job_id"] == "q:outer"
    finally:
        unbind_job(token)
    assert dict(current_job_fields()) == {}


def test_explicit_extra_wins_over_the_context(stream: io.StringIO) -> None:
    with job_context("q:ctx", "t"):
        get_logger("cvt.extra").info("x", extra={"job_id": "q:explicit"})
    [line] = _lines(stream)
    assert line["job_id"] == "q:explicit"


def test_reserved_names_and_odd_values_do_not_break_a_line(stream: io.StringIO) -> None:
    log = get_logger("cvt.odd")
    log.info("multi\nline", extra={"event": "clash", "ratio": float("nan"), "obj": object()})
    try:
        raise ValueError("bad thing")
    except ValueError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "multi\nline"
    assert first["extra_event"] == "clash"
    assert first["ratio"] == "nan"
    assert first["obj"].startswith("<object object")
    assert second["level"] == "ERROR"
    assert "ValueError: bad thing" in second["exc"]


def test_configure_is_idempotent(root_state: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "json", stream=first)
    configure_logging("WARNING", "json", stream=second)
    log = get_logger("cvt.idem")
    log.info("dropped by level")
    log.warning("kept")
    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["kept"]


def test_text_format(root_state: None) -> None:
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    with job_context("q:1", "fake"):
        get_logger("cvt.text").info("hello\nworld", extra={"note": "two words"})
    [line] = out.getvalue().splitlines()
    assert "INFO" in line and "cvt.text" in line
    assert "hello\\nworld" in line
    assert "job_id=q:1" in line and "job_type=fake" in line
    assert 'note="two words"' in line


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "json"), ("INFO", "xml")])
def test_configure_rejects_bad_arguments(root_state: None, level: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        configure_logging(level, fmt)


def test_filter_on_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(JobContextFilter())
    with caplog.at_level(logging.INFO), job_context("q:cap", "fake"):
        get_logger("cvt.cap").info("captured")
    [record] = caplog.records
    assert record.__dict__["job_id"] == "q:cap"


def test_job_logger_keeps_call_site_extras(stream: io.StringIO) -> None:
    log = JobLogger(get_logger("cvt.adapter"), {"job_id": "q:bound", "job_type": "fake"})
    log.info("bound", extra={"step": 3})
    [line] = _lines(stream)
    assert line["job_id"] == "q:bound" and line["step"] == 3
