"""The sync client's blocking enqueue path makes the same PRODUCER spans as the async client
(real OpenTelemetry SDK, in-memory exporter), on both brokers: one span per job, one per
batch, and the stored job carries the span's context for its attempts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conveyor.client import Conveyor, JobRequest

EXPORTER = InMemorySpanExporter()


def _install_sdk() -> None:
    """One global provider per process (OpenTelemetry allows setting it once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


_install_sdk()


@pytest.fixture(params=["redis", "sqlite"])
def sync_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Conveyor]:
    if request.param == "redis":
        c: Conveyor = request.getfixturevalue("client")
    else:
        c = Conveyor.from_url(f"sqlite:///{tmp_path / 'cv.db'}")
    try:
        c.connect()
        EXPORTER.clear()
        yield c
    finally:
        c.close()


def _producers() -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans() if s.kind is SpanKind.PRODUCER]


def test_the_blocking_enqueue_path_makes_producer_spans(sync_client: Conveyor) -> None:
    assert sync_client._fast is not None
    job = sync_client.enqueue("fake", {"duration_ms": 1}, queue="traced-sync")
    (one,) = _producers()
    assert one.name == "send traced-sync"
    assert (one.attributes or {})["messaging.message.id"] == job.id
    EXPORTER.clear()
    results = sync_client.enqueue_many(
        [JobRequest("fake", {"duration_ms": i}, queue="traced-sync") for i in range(3)])
    (batch,) = _producers()
    assert (batch.attributes or {})["messaging.batch.message_count"] == 3
    assert len(results) == 3
    span_id = format(one.context.span_id, "016x") if one.context else ""
    assert span_id and span_id in json.dumps(_trace_of(sync_client, job.id))


def _trace_of(c: Conveyor, job_id: str) -> object:
    """The trace context stored with a job, as the worker reads it with its delivery."""
    batch = c._call(c.aio.broker.fetch("traced-sync", 10, "w-trace", 60_000))
    return {d.job_id: d.trace for d in batch.deliveries}[job_id]
