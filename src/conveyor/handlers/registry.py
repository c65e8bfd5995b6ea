"""The handler registry: which function runs each job type, how its payload validates and how
it retries. Filled by the `@handler` decorator when the application's modules are imported.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

import pydantic
import pydantic_core

from conveyor.dlq.policy import DeadHook, DlqPolicy, build_policy
from conveyor.errors import UnknownJobType, ValidationError
from conveyor.flow import QueueLimits, parse_limits
from conveyor.jobs import MAX_TIMEOUT_S
from conveyor.queues import TYPE_NAME_RE, validate_queue_name
from conveyor.retry import Backoff, ExponentialBackoff, RetryPolicy

#: job types under this prefix are Conveyor's own (`conveyor.webhook`): workers run them, but
#: only Conveyor enqueues them, so the HTTP API refuses them and its schema leaves them out
RESERVED_TYPE_PREFIX = "conveyor."


def is_reserved_type(type_name: str) -> bool:
    return type_name.startswith(RESERVED_TYPE_PREFIX)

F = TypeVar("F", bound=Callable[..., Any])
PayloadModel = type[pydantic.BaseModel]
#: where a sync handler runs: a pool thread (cannot be stopped) or a child process (killed
#: on timeout, lease loss and shutdown; its function and payload must be picklable)
Isolation = Literal["thread", "process"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _error_details(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def _wants_ctx(func: Callable[..., Any]) -> bool:
    """True when func takes (payload, ctx); refuses signatures the worker could not call."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot inspect handler {func!r}: {exc}") from exc
    positional = [p for p in params if p.kind in _POSITIONAL]
    star_args = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if not positional and not star_args:
        raise ValueError(f"handler {func!r} must accept the payload as its first argument")
    if any(p.default is inspect.Parameter.empty for p in positional[2:]) or any(
        p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
        for p in params
    ):
        raise ValueError(f"handler {func!r} may require at most (payload, ctx)")
    return len(positional) >= 2 or star_args


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    type: str
    func: Callable[..., Any]
    payload_model: PayloadModel | None
    retry: RetryPolicy
    timeout_s: float | None
    is_async: bool
    wants_ctx: bool
    dlq_policy: DlqPolicy | None = None
    """Redrive after a delay at most N times, `on_dead` hooks: run by the DLQ worker."""
    isolation: Isolation = "thread"

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not TYPE_NAME_RE.fullmatch(self.type):
            raise ValueError(
                f"invalid job type {self.type!r}: 1-128 characters of A-Z a-z 0-9 _ . : -"
            )
        if self.timeout_s is not None and (
            not math.isfinite(self.timeout_s) or not 0 < self.timeout_s <= MAX_TIMEOUT_S
        ):
            raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {self.timeout_s}")
        if self.isolation not in ("thread", "process"):
            raise ValueError(f"isolation must be 'thread' or 'process', got {self.isolation!r}")
        if self.isolation == "process":
            if self.is_async:
                raise ValueError(f"job type {self.type!r}: isolation='process' is for sync "
                                 "handlers (an async handler is cancelled, not killed)")
            if "<locals>" in getattr(self.func, "__qualname__", "<locals>"):
                raise ValueError(f"job type {self.type!r}: a process-isolated handler must be "
                                 "a module-level function (it is sent to the child by name)")

    @classmethod
    def from_function(
        cls,
        type_name: str,
        func: Callable[..., Any],
        *,
        payload: PayloadModel | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
        dlq_policy: DlqPolicy | None = None,
        isolation: Isolation = "thread",
    ) -> HandlerSpec:
        return cls(
            type=type_name,
            func=func,
            payload_model=payload,
            retry=retry if retry is not None else RetryPolicy(),
            timeout_s=timeout_s,
            dlq_policy=dlq_policy,
            isolation=isolation,
            # An object with an `async def __call__` is async too.
            is_async=inspect.iscoroutinefunction(func)
            or inspect.iscoroutinefunction(type(func).__call__),
            wants_ctx=_wants_ctx(func),
        )

    def validate_payload(self, payload: Any) -> Any:
        """Enqueue-time check; returns the JSON-able value to store.

        Strict ("10" is not an int) and in JSON mode: Python objects (datetimes, UUIDs, models)
        are first turned into their JSON spelling, so a payload validates the same whether it
        came from Python or over HTTP, and what is stored is exactly what was validated.
        """
        model = self.payload_model
        if model is not None and isinstance(payload, model):
            return payload.model_dump(mode="json")
        text = _json_text(payload)
        if model is None:
            return json.loads(text)
        try:
            instance = model.model_validate_json(text, strict=True)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"invalid payload for job type {self.type!r}", details=_error_details(exc)
            ) from exc
        return instance.model_dump(mode="json")

    def parse_payload(self, payload_json: str) -> Any:
        """Run-time: the stored JSON text as the model instance (or the raw value).

        Lax, unlike enqueue: the text is what model_dump(mode="json") produced, and lax JSON
        mode is the one guaranteed to read every such dump back.
        """
        if self.payload_model is None:
            try:
                return json.loads(payload_json)
            except ValueError as exc:
                raise ValidationError(
                    f"stored payload of job type {self.type!r} is not JSON: {exc}"
                ) from exc
        try:
            return self.payload_model.model_validate_json(payload_json)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"stored payload does not match the model of job type {self.type!r}",
                details=_error_details(exc),
            ) from exc


def _detail(msg: str) -> dict[str, Any]:
    return {"loc": [], "msg": msg, "type": "json_invalid"}


def _json_text(payload: Any) -> str:
    """Encode as strict JSON (no NaN/Infinity); pydantic spells the non-JSON Python types."""
    try:
        return json.dumps(payload, allow_nan=False, default=pydantic_core.to_jsonable_python)
    except (TypeError, ValueError) as exc:  # NaN, a cycle, an unknown type, a non-str key
        msg = str(exc)
    except RecursionError:
        msg = "nested too deeply"
    raise ValidationError(f"payload is not JSON: {msg}", details=[_detail(msg)])


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Identity, or the same definition re-imported (e.g. a module reloaded)."""
    if a is b:
        return True
    key_a = (getattr(a, "__module__", None), getattr(a, "__qualname__", None))
    key_b = (getattr(b, "__module__", None), getattr(b, "__qualname__", None))
    return None not in key_a and key_a == key_b


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, HandlerSpec] = {}
        #: schedules declared in code, as (handler type or None, what was declared): a
        #: `conveyor.schedules.Schedule`, or the `schedule=` of `@handler` (a mapping, a cron
        #: text or a number of seconds); `conveyor.schedules.declared` reads them, and a
        #: worker syncs them at start
        self.schedules: list[tuple[str | None, Any]] = []
        #: flow control declared in code: set on the broker when a worker of the queue starts
        self._limits: dict[str, QueueLimits] = {}

    def add_schedules(self, *schedules: Any) -> None:
        """Declare `conveyor.schedules.Schedule` objects (synced when a worker starts)."""
        self.schedules.extend((None, s) for s in schedules)

    def queue_limits(self, queue: str, limits: QueueLimits | dict[str, Any] | None = None,
                     **fields: Any) -> QueueLimits:
        """Declare a queue's limits in code (`registry.queue_limits("emails",
        concurrency=5, key_rate={"count": 5})`); every worker serving the queue sets them
        on the broker when it starts (the last one started wins)."""
        validate_queue_name(queue)
        if limits is None:
            spec = parse_limits(fields)
        elif fields:
            raise TypeError("give limits or keyword fields, not both")
        else:
            spec = limits if isinstance(limits, QueueLimits) else parse_limits(limits)
        self._limits[queue] = spec
        return spec

    def declared_limits(self) -> dict[str, QueueLimits]:
        return dict(self._limits)

    def register(self, spec: HandlerSpec) -> HandlerSpec:
        existing = self._specs.get(spec.type)
        if existing is not None and not _same_function(existing.func, spec.func):
            raise ValueError(
                f"job type {spec.type!r} is already handled by "
                f"{getattr(existing.func, '__qualname__', existing.func)!r}"
            )
        self._specs[spec.type] = spec
        return spec

    def unregister(self, type_name: str) -> None:
        """Forget a type (tests, hot reload); unknown names are ignored."""
        self._specs.pop(type_name, None)

    def get(self, type_name: str) -> HandlerSpec:
        try:
            return self._specs[type_name]
        except (KeyError, TypeError):
            shown = str(type_name)[:128]
            raise UnknownJobType(
                f"no handler is registered for job type {shown!r}", details={"type": shown}
            ) from None

    def __contains__(self, type_name: object) -> bool:
        return isinstance(type_name, str) and type_name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def types(self) -> list[str]:
        return sorted(self._specs)

    def public_types(self) -> list[str]:
        """The types a caller of the HTTP API may enqueue (all but the reserved ones)."""
        return [t for t in self.types() if not is_reserved_type(t)]

    def handler(
        self,
        type_name: str,
        *,
        payload: PayloadModel | None = None,
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        timeout_s: float | None = None,
        redrive_after: timedelta | float | None = None,
        max_redrives: int | None = None,
        on_dead: DeadHook | Sequence[DeadHook] | None = None,
        redrive_poison: bool = False,
        isolation: Isolation = "thread",
        schedule: Any = None,
    ) -> Callable[[F], F]:
        """Decorator registering a function; the function itself is returned unchanged."""
        retry = RetryPolicy(
            max_attempts=max_attempts,
            backoff=backoff if backoff is not None else ExponentialBackoff(),
        )
        policy = build_policy(
            redrive_after=redrive_after, max_redrives=max_redrives, on_dead=on_dead,
            redrive_poison=redrive_poison,
        )

        def decorate(func: F) -> F:
            self.register(
                HandlerSpec.from_function(
                    type_name, func, payload=payload, retry=retry, timeout_s=timeout_s,
                    dlq_policy=policy, isolation=isolation,
                )
            )
            if schedule is not None:
                self.schedules.append((type_name, schedule))
            return func

        return decorate


default_registry = Registry()


def handler(
    type_name: str,
    *,
    payload: PayloadModel | None = None,
    max_attempts: int = 3,
    backoff: Backoff | None = None,
    timeout_s: float | None = None,
    registry: Registry | None = None,
    redrive_after: timedelta | float | None = None,
    max_redrives: int | None = None,
    on_dead: DeadHook | Sequence[DeadHook] | None = None,
    redrive_poison: bool = False,
    isolation: Isolation = "thread",
    schedule: Any = None,
) -> Callable[[F], F]:
    """`@handler("report.build", payload=ReportPayload, max_attempts=5, timeout_s=60)`.

    The DLQ policy of the type: `redrive_after` (a timedelta or seconds) sends its dead jobs
    back that long after they died, at most `max_redrives` times each (default 3); poison
    jobs (`lease_expired`) only with `redrive_poison=True`. `on_dead` hooks (sync or async
    callables taking the dead Job) run once per death, at least once.

    `isolation="process"` runs a sync handler in a child process, killed on timeout, lease
    loss or shutdown (a thread cannot be stopped); function and payload must be picklable.

    `schedule=` runs the type on a schedule (issue 15), synced when a worker starts: a cron
    text (`"*/5 * * * *"`, `"@hourly"`), a number of seconds (`every_s`), or a mapping of
    `conveyor.schedules.Schedule` fields (`name` defaults to the type, `job.type` is it).
    """
    target = registry if registry is not None else default_registry
    return target.handler(
        type_name,
        payload=payload,
        max_attempts=max_attempts,
        backoff=backoff,
        timeout_s=timeout_s,
        redrive_after=redrive_after,
        max_redrives=max_redrives,
        on_dead=on_dead,
        redrive_poison=redrive_poison,
        isolation=isolation,
        schedule=schedule,
    )


def load_app(modules: str) -> None:
    """Import `a.jobs,b.tasks` so their `@handler` decorators run."""
    for name in (part.strip() for part in modules.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ValidationError(
                f"cannot import handler module {name!r}: {type(exc).__name__}: {exc}",
                details={"module": name},
            ) from exc


def queue_limits(queue: str, limits: QueueLimits | dict[str, Any] | None = None,
                 *, registry: Registry | None = None, **fields: Any) -> QueueLimits:
    """`queue_limits("api-calls", key_concurrency=2, key_rate={"count": 5})` next to the
    handlers: flow-control limits a worker of the queue sets on the broker when it starts."""
    target = registry if registry is not None else default_registry
    return target.queue_limits(queue, limits, **fields)
