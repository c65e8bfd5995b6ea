"""The executor alone: one delivery in, one ack or fail out (no broker involved)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor.brokers.base import AckItem, FailItem
from conveyor.errors import JobError, PermanentError, RetryLater
from conveyor.handlers import JobContext, Registry
from conveyor.jobs import Delivery
from conveyor.logging import JobContextFilter
from conveyor.retry import FixedBackoff
from conveyor.worker.executor import TRACEBACK_LIMIT, Executor, truncate_tail

JOB_ID = "q:01HZZZZZZZZZZZZZZZZZZZZZZZ"


class Point(BaseModel):
    x: int
    y: int


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def executor(registry: Registry) -> Iterator[Executor]:
    ex = Executor(registry, worker_id="w1", concurrency=2)
    yield ex
    ex.shutdown()


def delivery(type_: str, payload_json: str = "null", **kw: Any) -> Delivery:
    fields: dict[str, Any] = {"attempts": 1, "max_attempts": 3, "timeout_s": None}
    fields.update(kw)
    return Delivery(
        job_id=JOB_ID, queue="q", type=type_, payload_json=payload_json,
        token="7", **fields,
    )


async def test_success_serialises_result_with_pydantic(
    registry: Registry, executor: Executor
) -> None:
    @registry.handler("add", payload=Point)
    async def add(p: Point) -> Point:
        return Point(x=p.x + 1, y=p.y + 1)

    out = await executor.execute(delivery("add", '{"x": 1, "y": 2}'))
    assert out == AckItem(JOB_ID, "7", '{"x":2,"y":3}')


async def test_unknown_type_is_retried_elsewhere_then_dead(
    registry: Registry, executor: Executor
) -> None:
    """A type this worker lacks may be known to another: retried later (attempt charged),
    DEAD on the last attempt; the message says which worker lacked it and how to fix it."""

    @registry.handler("known.one")
    async def known(p: None) -> None: ...

    out = await executor.execute(delivery("nope", attempts=1, max_attempts=3))
    assert isinstance(out, FailItem)
    assert out.error_code == "unknown_job_type"
    assert out.retry_delay_ms is not None and out.retry_delay_ms > 0
    assert "worker w1 on host " in out.message
    assert "--app" in out.message and "CONVEYOR_APP" in out.message
    assert "known.one" in out.message
    last = await executor.execute(delivery("nope", attempts=3, max_attempts=3))
    assert isinstance(last, FailItem)
    assert last.retry_delay_ms is None


async def test_bad_payload_is_dead(registry: Registry, executor: Executor) -> None:
    @registry.handler("pt", payload=Point)
    async def pt(p: Point) -> None:
        return None

    out = await executor.execute(delivery("pt", '{"x": "not a number"}'))
    assert isinstance(out, FailItem)
    assert out.error_code == "validation_error"
    assert out.retry_delay_ms is None


async def test_unserialisable_result_fails_with_handler_error(
    registry: Registry, executor: Executor
) -> None:
    @registry.handler("weird")
    async def weird(payload: None) -> object:
        return object()

    out = await executor.execute(delivery("weird"))
    assert isinstance(out, FailItem)
    assert out.error_code == "handler_error"
    assert "not JSON-serialisable" in out.message


async def test_a_result_that_cannot_be_read_back_fails_with_handler_error(
    registry: Registry, executor: Executor
) -> None:
    """A 5,000-digit integer serialises, but no reader takes it back: stored, the job would
    read as corrupt ever after. It fails, without retry; a long but readable result acks."""

    @registry.handler("huge_int")
    async def huge_int(payload: int) -> Any:
        return 10**5000 if payload else "9" * 5000

    out = await executor.execute(delivery("huge_int", "1"))
    assert isinstance(out, FailItem)
    assert out.error_code == "handler_error" and out.retry_delay_ms is None
    assert "cannot be read back" in out.message
    assert isinstance(await executor.execute(delivery("huge_int", "0")), AckItem)


async def test_error_classification_and_retry_delays(
    registry: Registry, executor: Executor
) -> None:
    @registry.handler("boom", max_attempts=3, backoff=FixedBackoff(2.5))
    def boom(payload: str) -> None:
        if payload == "plain":
            raise KeyError("missing")
        if payload == "coded":
            raise JobError("smtp down", code="smtp_transient")
        if payload == "later":
            raise RetryLater(7.0)
        raise PermanentError("no")

    plain = await executor.execute(delivery("boom", '"plain"'))
    coded = await executor.execute(delivery("boom", '"coded"'))
    later = await executor.execute(delivery("boom", '"later"'))
    perm = await executor.execute(delivery("boom", '"perm"'))
    last = await executor.execute(delivery("boom", '"plain"', attempts=3))
    assert isinstance(plain, FailItem) and isinstance(coded, FailItem)
    assert isinstance(later, FailItem) and isinstance(perm, FailItem)
    assert isinstance(last, FailItem)
    assert (plain.error_code, plain.retry_delay_ms) == ("handler_error", 2500)
    assert "KeyError" in plain.traceback
    assert (coded.error_code, coded.retry_delay_ms) == ("smtp_transient", 2500)
    assert later.retry_delay_ms == 7000
    assert (perm.error_code, perm.retry_delay_ms) == ("permanent_failure", None)
    assert last.retry_delay_ms is None  # attempts exhausted (the job's max_attempts)


async def test_timeout_uses_delivery_timeout_first(
    registry: Registry, executor: Executor
) -> None:
    @registry.handler("sleepy", timeout_s=30)
    async def sleepy(payload: None) -> None:
        await asyncio.sleep(30)

    out = await executor.execute(delivery("sleepy", timeout_s=0.05))
    assert isinstance(out, FailItem)
    assert out.error_code == "timeout"
    assert out.retry_delay_ms is not None  # retryable per policy


async def test_handler_raised_timeout_error_is_a_handler_error(
    registry: Registry, executor: Executor
) -> None:
    @registry.handler("own_timeout", timeout_s=30)
    async def own_timeout(payload: None) -> None:
        raise TimeoutError("upstream timed out")

    out = await executor.execute(delivery("own_timeout"))
    assert isinstance(out, FailItem)
    assert out.error_code == "handler_error"


async def test_context_and_log_fields_reach_sync_threads(
    registry: Registry, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    @registry.handler("ctx")
    def ctx_handler(payload: None, ctx: JobContext) -> list[Any]:
        ctx.logger.info("inside")
        return [ctx.job_id, ctx.attempt, ctx.worker_id]

    caplog.handler.addFilter(JobContextFilter())
    with caplog.at_level(logging.DEBUG):
        out = await executor.execute(delivery("ctx", attempts=2))
    assert out == AckItem(JOB_ID, "7", f'["{JOB_ID}",2,"w1"]')
    by_msg = {r.getMessage(): r for r in caplog.records}
    for msg in ("job_started", "inside", "job_succeeded"):
        assert getattr(by_msg[msg], "job_id", None) == JOB_ID, msg
        assert getattr(by_msg[msg], "job_type", None) == "ctx", msg


def test_truncate_keeps_the_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    short = truncate_tail(text, TRACEBACK_LIMIT)
    assert len(short) == TRACEBACK_LIMIT
    assert short.endswith("line 1999\n")
    assert truncate_tail("short", TRACEBACK_LIMIT) == "short"
