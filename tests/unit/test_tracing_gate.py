"""Tracing is on only once a real tracer provider is configured (issue 18): the OpenTelemetry
API alone (FastAPI installs it) or its no-op provider make no span and store no context.
Each case runs in a fresh interpreter: a process can set its global provider only once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("opentelemetry.sdk")

PRELUDE = """
from opentelemetry import trace
from conveyor import tracing

def stored():
    with tracing.producer_span("q", "t", "id") as context:
        return context
"""


def run(code: str) -> None:
    subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], check=True,
                   timeout=60)


def test_api_alone_is_off() -> None:
    run("""
        assert tracing.INSTALLED and not tracing.enabled()
        assert stored() == ""
        with tracing.consumer_span("q", "t", "id", 1, "") as span:
            assert span is None
            assert tracing.log_fields() == {}
    """)


def test_no_op_provider_is_off() -> None:
    run("""
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        assert not tracing.enabled()
        assert stored() == ""
    """)


def test_sdk_provider_set_after_import_turns_it_on() -> None:
    run("""
        from opentelemetry.sdk.trace import TracerProvider
        assert not tracing.enabled()
        trace.set_tracer_provider(TracerProvider())
        assert tracing.enabled()
        context = stored()
        assert context.startswith('{"traceparent":"00-'), context
        with tracing.consumer_span("q", "t", "id", 1, context) as span:
            assert span.is_recording()
            assert set(tracing.log_fields()) == {"trace_id", "span_id"}
    """)


def test_batch_context_parsed_once_links_every_attempt() -> None:
    run("""
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        with tracing.producer_span("q", "t", None, count=3) as context:
            pass
        spans = []
        for i in range(3):
            with tracing.consumer_span("q", "t", f"id{i}", 1, context) as span:
                spans.append(span)
        assert tracing._parent.cache_info().misses == 1
        linked = {s.links[0].context.span_id for s in spans}
        assert len(linked) == 1 and all(s.parent is None for s in spans)
        assert len({s.context.trace_id for s in spans}) == 3
    """)


def test_attempt_span_log_ids_and_an_unreadable_context() -> None:
    run("""
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        context = stored()
        attempt = tracing.Attempt("q", "t", "id", 2, context)
        with attempt as span:
            ids = span.get_span_context()
            assert trace.get_current_span() is span
            assert tracing.log_fields() == attempt.log_fields == {
                "trace_id": format(ids.trace_id, "032x"),
                "span_id": format(ids.span_id, "016x")}
            assert span.attributes["conveyor.job.attempt"] == 2
            assert span.attributes["messaging.message.id"] == "id"
        assert trace.get_current_span() is not span and not span.is_recording()
        # a stored context that does not parse starts a trace of its own, whatever is current
        with trace.get_tracer("t").start_as_current_span("outer") as outer:
            for bad in ("not json", '["x"]', '{"traceparent": 1}'):
                with tracing.consumer_span("q", "t", "id", 1, bad) as span:
                    assert span.parent is None, bad
                    assert span.context.trace_id != outer.get_span_context().trace_id
    """)
