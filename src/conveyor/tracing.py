"""OpenTelemetry traces from enqueue to handler (issue 18), when the `otel` extra is installed.

An enqueue runs in a PRODUCER span (`send <queue>`) whose W3C trace context is stored with the
job (`JobSpec.trace`); each attempt runs in a CONSUMER span (`process <queue>`) whose parent is
that PRODUCER span, attributed after the messaging semantic conventions. `enqueue_many` makes
one PRODUCER span for the batch, and its jobs' attempts start traces of their own that LINK to
it (not thousands of children under one span). Retries, lease loss and death are span events,
and a failed attempt's status is ERROR. Inside an attempt, the job's log lines carry
`trace_id` and `span_id`.

Tracing is on (`enabled()`) only once a real tracer provider is set (an SDK's
`trace.set_tracer_provider`, not the API's default proxy or its no-op provider): the API
alone is installed with FastAPI, so its presence says nothing. Off, every function here
returns at once: no span, no context, nothing stored with the job. The check is one global
read once on (a provider can be set only once per process), one lookup before.

Per attempt (the hot path), when on: a batch's jobs share one stored context, so its parse
(W3C extraction) is cached, and a job's retries share theirs; the attributes shared by a
queue and type's attempts are built once; the span is an `Attempt` (a small class, not a
generator context manager) that formats the log lines' ids from the span it started. What
is left is the SDK's own cost (docs/benchmarks.md, "Observability").
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import (
        Link,
        NoOpTracerProvider,
        ProxyTracerProvider,
        SpanKind,
        Status,
        StatusCode,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    INSTALLED = True
except ImportError:  # the `otel` extra is not installed
    INSTALLED = False

SYSTEM = "conveyor"
#: a stored context of a batch enqueue: its attempts link to it instead of being its children
LINK_KEY = "link"
_TRACER_NAME = "conveyor"


_cached: list[Any] = []
#: the parent of an attempt with no (or an unreadable) stored context: none, a new trace
_ROOT: Any = otel_context.Context() if INSTALLED else None
_on: list[bool] = []  # [True] once a real provider was seen (it cannot be unset)


#: the OpenTelemetry API's module globals, to see "no provider set yet" in one dict look-up
#: (`get_tracer_provider` also looks in os.environ each call: 5 us, twice per job); used
#: only while the API keeps that global and no provider comes from the environment
_API: dict[str, Any] = vars(trace) if INSTALLED else {}
_FAST_OFF = ("_TRACER_PROVIDER" in _API
             and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ)


def enabled() -> bool:
    """True when OpenTelemetry is installed and a real tracer provider is configured."""
    if _on:
        return True
    if not INSTALLED or (_FAST_OFF and _API["_TRACER_PROVIDER"] is None):
        return False
    if isinstance(trace.get_tracer_provider(), (ProxyTracerProvider, NoOpTracerProvider)):
        return False
    _on.append(True)
    return True


def _tracer() -> Any:
    """One tracer per process (a proxy until a provider is set, then the provider's own)."""
    if not _cached:
        from conveyor._version import __version__

        _cached.append(trace.get_tracer(_TRACER_NAME, __version__))
        _cached.append(TraceContextTextMapPropagator())
    return _cached[0]


def _w3c() -> Any:
    _tracer()
    return _cached[1]


def _carrier_of(span: Any, link: bool = False) -> str:
    """The span's context as stored with a job: JSON of the W3C headers ('' if invalid)."""
    if not span.get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _w3c().inject(carrier, context=trace.set_span_in_context(span))
    if link:
        carrier[LINK_KEY] = "1"
    return json.dumps(carrier, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def _common(queue: str, operation: str) -> dict[str, Any]:
    """The attributes every span of this queue and operation has (do not mutate)."""
    return {"messaging.system": SYSTEM, "messaging.destination.name": queue,
            "messaging.operation.type": operation, "messaging.operation.name": operation}


def _attributes(queue: str, operation: str, **more: Any) -> dict[str, Any]:
    return {**_common(queue, operation), **{k: v for k, v in more.items() if v is not None}}


@contextlib.contextmanager
def producer_span(
    queue: str, job_type: str | None, job_id: str | None, count: int = 1
) -> Iterator[str]:
    """A PRODUCER span around an enqueue of `count` jobs; yields the context to store with
    them ('' when tracing is off). A batch's context is stored as a link."""
    if not enabled():
        yield ""
        return
    attrs = _attributes(queue, "send", **{
        "messaging.message.id": job_id if count == 1 else None,
        "conveyor.job.type": job_type,
        "messaging.batch.message_count": count if count > 1 else None,
    })
    name = f"send {queue}"
    with _tracer().start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attrs) as span:
        yield _carrier_of(span, link=count > 1)


@functools.lru_cache(maxsize=256)
def _parent(stored: str) -> tuple[Any, tuple[Any, ...]]:
    """(parent context, links) from a job's stored context; a bad one is ignored. Cached:
    the jobs of one `enqueue_many` share their stored context, and the attempts of one job
    too (contexts and links are immutable)."""
    try:
        carrier = json.loads(stored)
    except ValueError:
        return _ROOT, ()
    if not isinstance(carrier, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in carrier.items()
    ):
        return _ROOT, ()
    ctx = _w3c().extract(carrier)
    if carrier.get(LINK_KEY):
        linked = trace.get_current_span(ctx).get_span_context()
        return _ROOT, (Link(linked),) if linked.is_valid else ()
    return ctx, ()


@functools.lru_cache(maxsize=1024)
def _process_attributes(queue: str, job_type: str) -> dict[str, Any]:
    """What every attempt span of this queue and type has (do not mutate)."""
    return {**_common(queue, "process"), "conveyor.job.type": job_type}


class Attempt:
    """The CONSUMER span of one attempt, current while the handler runs: `with` yields the
    span. A class, not a generator context manager, and the log fields made from the span
    it started (no lookup of the current span): this runs for every attempt."""

    __slots__ = ("_args", "_token", "log_fields", "span")

    def __init__(self, queue: str, job_type: str, job_id: str, attempt: int,
                 stored: str) -> None:
        self._args = (queue, job_type, job_id, attempt, stored)
        self._token: Any = None
        self.span: Any = None
        #: `trace_id` and `span_id` for the job's log lines (set on entering)
        self.log_fields: Mapping[str, str] = {}

    def __enter__(self) -> Any:
        queue, job_type, job_id, attempt, stored = self._args
        parent, links = _parent(stored) if stored else (_ROOT, ())
        attrs = {**_process_attributes(queue, job_type), "messaging.message.id": job_id,
                 "conveyor.job.attempt": attempt}
        # start_span + attach, not start_as_current_span: half the cost per attempt
        span = self.span = _tracer().start_span(
            f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attrs,
            links=links or None)
        self._token = otel_context.attach(trace.set_span_in_context(span))
        ctx = span.get_span_context()
        if ctx.is_valid:
            self.log_fields = {"trace_id": format(ctx.trace_id, "032x"),
                               "span_id": format(ctx.span_id, "016x")}
        return span

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        otel_context.detach(self._token)
        self.span.end()


_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def consumer_span(
    queue: str, job_type: str, job_id: str, attempt: int, stored: str
) -> AbstractContextManager[Any]:
    """A CONSUMER span for one attempt, child of the producer's span (or linked to a batch's),
    current while the handler runs. `with` yields the span (None when tracing is off). The
    worker makes its `Attempt` itself (once it knows tracing is on), for its log fields."""
    return Attempt(queue, job_type, job_id, attempt, stored) if enabled() else _OFF


def failed(span: Any, code: str, message: str, *, retry_in_ms: int | None) -> None:
    """A failed attempt: ERROR status, and a `retry` or `dead` event."""
    if span is None:
        return
    attrs = {"conveyor.error.code": code, "conveyor.error.message": message[:500]}
    if retry_in_ms is not None:
        span.add_event("retry", {**attrs, "conveyor.retry.delay_ms": retry_in_ms})
    else:
        span.add_event("dead", attrs)
    span.set_status(Status(StatusCode.ERROR, f"{code}: {message[:200]}"))


def lease_lost(span: Any) -> None:
    if span is None:
        return
    span.add_event("lease_lost")
    span.set_status(Status(StatusCode.ERROR, "lease_lost"))


def log_fields() -> Mapping[str, str]:
    """`trace_id` and `span_id` of the current span, for the job's log lines ({} if none)."""
    if not enabled():
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


@contextlib.contextmanager
def incoming(headers: Mapping[str, str]) -> Iterator[None]:
    """Continue the trace of an incoming request (its `traceparent` / `tracestate`)."""
    if "traceparent" not in headers or not enabled():
        yield
        return
    ctx = _w3c().extract(dict(headers))
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


__all__ = ["INSTALLED", "Attempt", "consumer_span", "enabled", "failed", "incoming",
           "lease_lost", "log_fields", "producer_span"]
