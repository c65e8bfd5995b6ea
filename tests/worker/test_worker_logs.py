"""Job logs through a real Worker on the real Redis (and SQLite): what a handler writes
through `ctx.logger` is kept with its job, per attempt, sync handlers included; the
process log still gets every line; a chatty handler costs one broker call, not one a line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import tests.worker.isolated_app as isolated_app
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import JobError
from conveyor.handlers import JobContext, Registry
from conveyor.joblogs import MAX_LINES, JobLogger, decode_lines
from conveyor.jobs import JobState
from conveyor.retry import FixedBackoff
from tests.support.waits import wait_for_state
from tests.worker.worker_helpers import QUEUE, RunWorker

DONE = {JobState.SUCCEEDED, JobState.DEAD}


def _register(registry: Registry) -> None:
    @registry.handler("chatty", max_attempts=3, backoff=FixedBackoff(0.01))
    async def chatty(payload: dict[str, Any], ctx: JobContext) -> int:
        assert isinstance(ctx.logger, JobLogger)
        ctx.logger.info("attempt %d of %s", ctx.attempt, ctx.job_id)
        ctx.logger.debug("debug lines stay in the process log")
        if ctx.attempt == 1:
            try:
                raise ValueError("boom")
            except ValueError:
                ctx.logger.exception("caught it")
            raise JobError("first attempt fails")
        await asyncio.sleep(0)
        ctx.logger.warning("done")
        return ctx.attempt

    @registry.handler("sync.chatty")
    def sync_chatty(payload: dict[str, Any], ctx: JobContext) -> str:
        for i in range(3):
            ctx.logger.info(f"from a thread {i}")
        return "ok"


async def test_lines_are_kept_with_the_job_per_attempt(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _register(registry)
    caplog.set_level(logging.DEBUG, logger="conveyor.job")
    job = await client.enqueue("chatty", {}, queue=QUEUE)
    sync_job = await client.enqueue("sync.chatty", {}, queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE)
        sync_done = await wait_for_state(client, sync_job.id, DONE)
    assert done.state is JobState.SUCCEEDED and done.result == 2
    lines = decode_lines(await client.broker.job_logs(job.id))
    assert [(li.attempt, li.level, li.message.splitlines()[0]) for li in lines] == [
        (1, "INFO", f"attempt 1 of {job.id}"),
        (1, "ERROR", "caught it"),
        (2, "INFO", f"attempt 2 of {job.id}"),
        (2, "WARNING", "done"),
    ]
    assert "ValueError: boom" in lines[1].message  # the traceback comes along
    assert lines[0].at <= lines[-1].at
    # the worker's own log still has every line, debug included
    logged = [r.getMessage() for r in caplog.records if r.name == "conveyor.job"]
    assert "debug lines stay in the process log" in logged and "done" in logged

    assert sync_done.state is JobState.SUCCEEDED
    sync_lines = decode_lines(await client.broker.job_logs(sync_job.id))
    assert [li.message for li in sync_lines] == [f"from a thread {i}" for i in range(3)]


async def test_a_chatty_handler_costs_one_broker_call(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("flood")
    async def flood(payload: dict[str, Any], ctx: JobContext) -> None:
        for i in range(5000):  # no await: the shipper cannot run until the handler returns
            ctx.logger.info("line %d", i)

    job = await client.enqueue("flood", {}, queue=QUEUE)
    async with run_worker() as worker:
        await wait_for_state(client, job.id, DONE)
        assert worker.logs.calls == 1
    kept = [li.message for li in decode_lines(await client.broker.job_logs(job.id))]
    assert kept == [f"line {i}" for i in range(5000 - MAX_LINES, 5000)]


async def test_lines_on_sqlite_and_a_handler_that_never_logs(
    registry: Registry, run_worker: RunWorker, tmp_path: Path
) -> None:
    _register(registry)

    @registry.handler("quiet")
    async def quiet(payload: dict[str, Any]) -> None:
        return None

    broker = SqliteBroker(tmp_path / "logs.db")
    async with AsyncConveyor(broker, registry=registry) as client:
        job = await client.enqueue("chatty", {}, queue=QUEUE)
        silent = await client.enqueue("quiet", {}, queue=QUEUE)
        async with run_worker(on=broker) as worker:
            await wait_for_state(client, job.id, DONE)
            await wait_for_state(client, silent.id, DONE)
            calls = worker.logs.calls
        assert len(decode_lines(await broker.job_logs(job.id))) == 4
        assert await broker.job_logs(silent.id) == []
        assert calls >= 1


async def test_a_process_isolated_handler_s_lines_come_back_from_its_child(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    registry.handler("iso.chatty", max_attempts=2, backoff=FixedBackoff(0.01),
                     isolation="process")(isolated_app.chatty)
    job = await client.enqueue("iso.chatty", {"lines": ["one", "two"], "fail_first": True},
                               queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE, timeout_s=30)
    assert done.state is JobState.SUCCEEDED and done.result == 2
    lines = decode_lines(await client.broker.job_logs(job.id))
    assert [(li.attempt, li.message.split(" (pid")[0]) for li in lines] == [
        (1, "one"), (1, "two"), (2, "one"), (2, "two")]  # the failed attempt's too
    pids = {li.message.rsplit("pid ", 1)[1] for li in lines}
    assert len(pids) == 2  # written in two child processes, one per attempt

