"""One trace from an HTTP request to the handler (issue 18), with the real OpenTelemetry SDK
and its in-memory exporter: an instrumented request enqueues a job through the API, the job
fails twice and succeeds, and the exporter holds one trace: request -> enqueue (PRODUCER) ->
three attempt spans (CONSUMER) with the right parents, retry events and statuses; the job's
log lines carry its trace and span ids. A batch enqueue links its attempts instead."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

import httpx
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conveyor.client import AsyncConveyor
from conveyor.errors import JobError
from conveyor.handlers import JobContext, Registry
from conveyor.jobs import JobState
from conveyor.logging import JobContextFilter
from conveyor.retry import FixedBackoff
from conveyor.web import create_app
from conveyor.worker import Worker
from tests.api.api_support import settings_for
from tests.support.asgi import serve
from tests.support.env import REDIS_URL, new_prefix
from tests.support.keys import delete_prefix

QUEUE = "traced"
EXPORTER = InMemorySpanExporter()


def _install_sdk() -> None:
    """One global provider per process (OpenTelemetry allows setting it once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


_install_sdk()


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, AsyncConveyor, Registry]]:
    prefix = new_prefix()
    registry = Registry()

    @registry.handler("flaky", max_attempts=5, backoff=FixedBackoff(0.01))
    async def flaky(payload: None, ctx: JobContext) -> int:
        if ctx.attempt <= 2:
            raise JobError(f"attempt {ctx.attempt} fails", code="flaky_error")
        return ctx.attempt

    client = AsyncConveyor.from_url(REDIS_URL, key_prefix=prefix, registry=registry)
    await client.connect()
    EXPORTER.clear()
    try:
        async with serve(create_app(client, settings_for(prefix))) as http:
            yield http, client, registry
    finally:
        await client.close()
        await delete_prefix(prefix)


async def run_until_done(client: AsyncConveyor, registry: Registry, ids: list[str]) -> None:
    worker = Worker(client.broker, queues=[QUEUE], concurrency=2, registry=registry)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(1000):
            jobs = [await client.get(i) for i in ids]
            if all(j.state is JobState.SUCCEEDED for j in jobs):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"jobs not done: {[j.state for j in jobs]}")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


def has(span: ReadableSpan, expected: dict[str, Any]) -> bool:
    attrs = dict(span.attributes or {})
    return {k: attrs.get(k) for k in expected} == expected


def spans_of(trace_id: int) -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id]


def _attempt(span: ReadableSpan) -> int:
    value = (span.attributes or {}).get("conveyor.job.attempt")
    assert isinstance(value, int), span.attributes
    return value


async def test_one_trace_from_request_to_three_attempts(
    setup: tuple[httpx.AsyncClient, AsyncConveyor, Registry], caplog: pytest.LogCaptureFixture
) -> None:
    http, client, registry = setup
    caplog.handler.addFilter(JobContextFilter())
    caplog.set_level(logging.INFO, logger="conveyor.job")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/jobs", kind=SpanKind.CLIENT) as request:
        headers: dict[str, str] = {}
        inject(headers)
        r = await http.post("/v1/jobs", json={"type": "flaky", "queue": QUEUE}, headers=headers)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    await run_until_done(client, registry, [job_id])

    trace_id = request.get_span_context().trace_id
    spans = spans_of(trace_id)
    (root,) = [s for s in spans if s.name == "POST /v1/jobs"]
    (send,) = [s for s in spans if s.kind is SpanKind.PRODUCER]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CONSUMER), key=_attempt)
    assert len(spans) == 5, [s.name for s in spans]  # one trace, nothing else in it
    assert send.name == f"send {QUEUE}"
    assert send.parent is not None and send.parent.span_id == root.context.span_id
    assert has(send, {
        "messaging.system": "conveyor", "messaging.destination.name": QUEUE,
        "messaging.message.id": job_id, "conveyor.job.type": "flaky",
        "messaging.operation.type": "send"})
    assert [s.attributes["conveyor.job.attempt"] for s in attempts if s.attributes] == [1, 2, 3]
    for span in attempts:
        assert span.name == f"process {QUEUE}"
        assert span.parent is not None and span.parent.span_id == send.context.span_id
        assert has(span, {
            "messaging.system": "conveyor", "messaging.destination.name": QUEUE,
            "messaging.message.id": job_id, "conveyor.job.type": "flaky",
            "messaging.operation.type": "process"})
    for span in attempts[:2]:
        assert span.status.status_code is StatusCode.ERROR
        (event,) = span.events
        assert event.name == "retry"
        assert dict(event.attributes or {})["conveyor.error.code"] == "flaky_error"
    assert attempts[2].status.status_code is StatusCode.UNSET
    assert attempts[2].events == ()

    # the job's log lines name the attempt's trace and span
    lines = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert {getattr(r, "trace_id", None) for r in lines} == {format(trace_id, "032x")}
    assert {getattr(r, "span_id", None) for r in lines} <= {
        format(s.context.span_id, "016x") for s in attempts}
    assert len(lines) >= 3


async def test_a_batch_links_its_attempts_instead_of_parenting_them(
    setup: tuple[httpx.AsyncClient, AsyncConveyor, Registry],
) -> None:
    http, client, registry = setup
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/jobs/batch", kind=SpanKind.CLIENT) as request:
        headers: dict[str, str] = {}
        inject(headers)
        body: dict[str, Any] = {"jobs": [{"type": "flaky", "queue": QUEUE}] * 3}
        r = await http.post("/v1/jobs/batch", json=body, headers=headers)
    assert r.status_code == 201, r.text
    ids = [j["id"] for j in r.json()["jobs"]]
    await run_until_done(client, registry, ids)

    (send,) = [s for s in spans_of(request.get_span_context().trace_id)
               if s.kind is SpanKind.PRODUCER]
    assert dict(send.attributes or {})["messaging.batch.message_count"] == 3
    attempts = [s for s in EXPORTER.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert len(attempts) == 9  # three jobs, three attempts each
    for span in attempts:
        assert span.parent is None  # a trace of its own ...
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
    assert len({s.context.trace_id for s in attempts}) == 9
