"""Structured logging: one JSON (or text) line per event, job fields bound by context."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import os
import re
import select
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


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "json"), ("INFO", "xml"), ("INFO", "")])
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


# --- formats: auto / json / text, exceptions, library loggers -------------------------------


class SmtpDown(Exception):
    """A handler's own exception class: its line names it with its module."""


@pytest.fixture
def tty(root_state: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, int]]:
    """A real terminal: the slave end of a pty as a text stream, and the master fd."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def _read_pty(master: int) -> str:
    out = b""
    while select.select([master], [], [], 0.2)[0]:
        out += os.read(master, 65536)
    return out.decode()


def test_auto_is_coloured_text_on_a_terminal(tty: tuple[Any, int]) -> None:
    stream, master = tty
    assert configure_logging("INFO", "auto", stream=stream) == "text"
    with job_context("q:tty", "fake"):
        get_logger("cvt.tty").warning("job_failed", extra={"error_code": "handler_error"})
    line = _read_pty(master)
    assert "\x1b[" in line  # ANSI colours
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[WARNING *\] cvt\.tty: job_failed ", plain)
    assert "error_code=handler_error job_id=q:tty job_type=fake" in plain


def test_no_color_keeps_text_plain(tty: tuple[Any, int], monkeypatch: pytest.MonkeyPatch) -> None:
    stream, master = tty
    monkeypatch.setenv("NO_COLOR", "1")
    configure_logging("INFO", "text", stream=stream)
    get_logger("cvt.nocolor").info("plain")
    line = _read_pty(master)
    assert "plain" in line and "\x1b[" not in line


def test_auto_is_json_off_a_terminal(root_state: None) -> None:
    out = io.StringIO()
    assert configure_logging("INFO", "auto", stream=out) == "json"
    get_logger("cvt.auto").info("piped")
    assert json.loads(out.getvalue())["event"] == "piped"


def _fail(log: logging.Logger, level: int) -> None:
    try:
        raise SmtpDown("relay refused")
    except SmtpDown as exc:
        log.log(level, "job_failed", exc_info=exc, extra={"error_code": "smtp_transient"})


def test_json_failure_line_has_class_and_traceback(stream: io.StringIO) -> None:
    with job_context("q:f", "email.send"):
        _fail(get_logger("cvt.fail"), logging.WARNING)
    [line] = _lines(stream)
    assert line["exc_type"] == f"{__name__}.SmtpDown"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("SmtpDown: relay refused")
    assert line["job_id"] == "q:f" and line["job_type"] == "email.send"


def test_text_failure_is_one_line_an_error_shows_its_traceback(root_state: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    log = get_logger("cvt.textfail")
    _fail(log, logging.WARNING)
    [warning] = out.getvalue().splitlines()
    assert f"exc_type={__name__}.SmtpDown" in warning and "Traceback" not in warning
    out.truncate(0), out.seek(0)
    _fail(log, logging.ERROR)
    first, *rest = out.getvalue().splitlines()
    assert f"exc_type={__name__}.SmtpDown" in first
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1].endswith("SmtpDown: relay refused")


def test_library_loggers_come_out_the_same_way(stream: io.StringIO) -> None:
    logging.getLogger("some.uvicorn.error").info(
        "Uvicorn running on %s", "http://x", extra={"color_message": "\x1b[1mhttp://x\x1b[0m"}
    )
    with job_context("q:lib", "fake"):
        logging.getLogger("some.redis.asyncio").warning("reconnecting")
    uvicorn_line, redis_line = _lines(stream)
    assert uvicorn_line["event"] == "Uvicorn running on http://x"
    assert "color_message" not in uvicorn_line
    assert TS_RE.match(redis_line["ts"]) and redis_line["level"] == "WARNING"
    assert redis_line["job_id"] == "q:lib"
