"""Turning validated request bodies into enqueued jobs, for one job and for a batch.

The client validates each job against its registered type; its errors are rewritten here so
that `details[].loc` points into the request body (`["body", "payload", "to"]`,
`["body", "jobs", 3, "type"]`), whatever the stage that caught them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pydantic

from conveyor.api.body import parse_model
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    BatchConflict,
    BatchOut,
    JobIn,
)
from conveyor.client import IDEMPOTENCY_KEY_MAX, AsyncConveyor, JobRequest
from conveyor.errors import (
    ConveyorError,
    ErrorCode,
    IdempotencyConflict,
    JobNotFound,
    PayloadTooLarge,
    UnknownJobType,
    ValidationError,
)
from conveyor.handlers.registry import RESERVED_TYPE_PREFIX, is_reserved_type
from conveyor.jobs import Job, JobSpec

Loc = tuple[str | int, ...]

#: the client's names for fields the API spells differently
_FIELD_NAMES = {"delay": "delay_ms"}
_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to `POST /v1/jobs`, ready to send."""

    status: int
    body: bytes
    location: str


async def enqueue_one(
    rt: ApiRuntime, content_type: str | None, body: bytes, header_key: str | None
) -> Enqueued:
    """`POST /v1/jobs` from its raw parts (both the route and the fast path call this):
    201 and the new job, or 200 and the live job the idempotency key already names."""
    job_in = parse_model(content_type, body, JobIn)
    key = _merge_key(job_in.idempotency_key, header_key)
    client = await rt.ready()
    try:
        job, created = await client.enqueue_job(to_request(job_in, key))
    except (ValidationError, UnknownJobType, PayloadTooLarge) as exc:
        raise rescoped(exc, ("body",)) from None
    return Enqueued(201 if created else 200, job.__pydantic_serializer__.to_json(job),
                    f"/v1/jobs/{job.id}")


def _header_error(msg: str) -> ValidationError:
    return ValidationError(f"invalid Idempotency-Key header: {msg}", details=[
        {"loc": ["header", "Idempotency-Key"], "msg": msg, "type": "value_error"}])


def _merge_key(body_key: str | None, header_key: str | None) -> str | None:
    if header_key is None:
        return body_key
    if not (len(header_key) <= IDEMPOTENCY_KEY_MAX and _KEY_RE.fullmatch(header_key)):
        raise _header_error(f"1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters")
    if body_key is not None and header_key != body_key:
        # 409, not 422: each key alone is valid; together they name two different requests
        msg = "differs from the body's idempotency_key"
        raise IdempotencyConflict(f"Idempotency-Key header {msg}", details=[
            {"loc": ["header", "Idempotency-Key"], "msg": msg, "type": "idempotency_conflict"}])
    return header_key


def to_request(body: JobIn, idempotency_key: str | None = None) -> JobRequest:
    if is_reserved_type(body.type):
        msg = (f"job type {body.type!r} is reserved: Conveyor enqueues its "
               f"{RESERVED_TYPE_PREFIX}* jobs itself")
        raise ValidationError(msg, details=[{"loc": ["type"], "msg": msg,
                                             "type": "reserved_job_type"}])
    return JobRequest(
        type=body.type,
        payload=body.payload,
        queue=body.queue,
        priority=body.priority,
        delay=None if body.delay_ms is None else timedelta(milliseconds=body.delay_ms),
        run_at=body.run_at,
        max_attempts=body.max_attempts,
        timeout_s=body.timeout_s,
        idempotency_key=idempotency_key if idempotency_key is not None else body.idempotency_key,
        limit_key=body.limit_key,
    )


def _field_of(exc: ConveyorError) -> str:
    if isinstance(exc, UnknownJobType):
        return "type"
    if isinstance(exc, PayloadTooLarge):
        return "payload"
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    return _FIELD_NAMES.get(field, field) if isinstance(field, str) else ""


def scoped_details(exc: ConveyorError, prefix: Loc) -> list[dict[str, Any]]:
    """The error as `[{"loc", "msg", "type"}]`, located in the request body under `prefix`."""
    details = exc.details
    if isinstance(details, list) and all(isinstance(d, dict) and "loc" in d for d in details):
        # A payload that failed its type's model carries pydantic's errors, located inside
        # the payload; the client's own checks locate the request field.
        inside_payload = isinstance(exc.__cause__, pydantic.ValidationError)
        out = []
        for d in details:
            loc = [_FIELD_NAMES.get(p, p) if isinstance(p, str) else p for p in d["loc"]]
            where = (*prefix, "payload", *loc) if inside_payload else (*prefix, *loc)
            out.append({"loc": list(where), "msg": d.get("msg", exc.message),
                        "type": d.get("type", str(exc.code))})
        return out
    field = _field_of(exc)
    loc = [*prefix, field] if field else list(prefix)
    return [{"loc": loc, "msg": exc.message, "type": str(exc.code)}]


def rescoped(exc: ConveyorError, prefix: Loc) -> ConveyorError:
    return type(exc)(exc.message, details=scoped_details(exc, prefix), code=str(exc.code))


def build_all(client: AsyncConveyor, bodies: list[JobIn]) -> list[tuple[JobSpec, Any]]:
    """Validate every job; one error report naming each bad item, or all the specs."""
    built: list[tuple[JobSpec, Any]] = []
    errors: list[dict[str, Any]] = []
    codes: set[str] = set()
    for i, body in enumerate(bodies):
        try:
            built.append(client.build_spec(to_request(body)))
        except ConveyorError as exc:
            codes.add(str(exc.code))
            errors.extend({"index": i, **d} for d in scoped_details(exc, ("body", "jobs", i)))
    if errors:
        code = codes.pop() if len(codes) == 1 else ErrorCode.VALIDATION_ERROR
        bad = len({e["index"] for e in errors})
        raise ValidationError(
            f"{bad} of {len(bodies)} jobs are invalid; none was enqueued",
            details=errors, code=code,
        )
    return built


async def enqueue_batch(client: AsyncConveyor, bodies: list[JobIn]) -> BatchOut:
    """All-or-nothing validation, then one broker call for the whole batch."""
    built = build_all(client, bodies)
    results = await client.enqueue_specs([spec for spec, _ in built])
    jobs: list[Job | None] = [None] * len(results)
    conflicts: list[BatchConflict] = []
    hits: list[int] = []
    for i, ((spec, payload), res) in enumerate(zip(built, results, strict=True)):
        if res.created:
            jobs[i] = AsyncConveyor.job_from_result(spec, payload, res)
            continue
        hits.append(i)
        if res.fingerprint != spec.fingerprint:
            conflicts.append(BatchConflict(
                index=i, job_id=res.job_id,
                message=f"idempotency key {spec.idempotency_key!r} already names job "
                f"{res.job_id} with a different request",
            ))
    # one batched read of the jobs the keys already name (never one call per hit)
    existing = await client.get_many([results[i].job_id for i in hits]) if hits else []
    for i, job in zip(hits, existing, strict=True):
        if job is None:  # deleted (retention, purge) since the key named it
            raise JobNotFound(f"job {results[i].job_id} not found",
                              details={"job_id": results[i].job_id})
        jobs[i] = job
    return BatchOut(
        jobs=[j for j in jobs if j is not None],
        created=[r.created for r in results],
        conflicts=conflicts,
    )
