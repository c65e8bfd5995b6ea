"""The handler registry, the decorator, payload validation, load_app and the built-in fake."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor.errors import ErrorCode, JobError, PermanentError, UnknownJobType, ValidationError
from conveyor.handlers import (
    HandlerSpec,
    JobContext,
    Registry,
    default_registry,
    handler,
    load_app,
)
from conveyor.handlers.fake import FakePayload, fake_handler
from conveyor.retry import ExponentialBackoff, FixedBackoff, RetryPolicy


class Report(BaseModel):
    count: int
    title: str = "untitled"


class Event(BaseModel):
    at: datetime


def _ctx(attempt: int = 1, max_attempts: int = 5, type_name: str = "fake") -> JobContext:
    return JobContext(
        job_id=f"default:{uuid.uuid4().hex}",
        type=type_name,
        queue="default",
        attempt=attempt,
        max_attempts=max_attempts,
        worker_id="w-test",
        logger=logging.getLogger("test.handlers"),
    )


# --- registration ---------------------------------------------------------------------------


def test_decorator_registers_and_returns_the_function() -> None:
    reg = Registry()

    @reg.handler("report.build", payload=Report, max_attempts=5, timeout_s=60)
    async def build(payload: Report, ctx: JobContext) -> int:
        return payload.count

    spec = reg.get("report.build")
    assert spec.func is build
    assert spec.payload_model is Report
    assert spec.retry.max_attempts == 5
    assert spec.retry.backoff == ExponentialBackoff()
    assert spec.timeout_s == 60
    assert spec.is_async and spec.wants_ctx
    assert spec.dlq_policy is None
    assert "report.build" in reg and "other" not in reg and 42 not in reg
    assert reg.types() == ["report.build"]


def test_module_level_decorator_targets_the_given_registry() -> None:
    reg = Registry()

    @handler("sync.job", registry=reg, backoff=FixedBackoff(2.0))
    def work(payload: Any) -> Any:
        return payload

    spec = reg.get("sync.job")
    assert not spec.is_async and not spec.wants_ctx
    assert spec.retry == RetryPolicy(max_attempts=3, backoff=FixedBackoff(2.0))
    assert "sync.job" not in default_registry


def test_signature_detection() -> None:
    class AsyncCallable:
        async def __call__(self, payload: Any) -> None:
            return None

    def star(*args: Any) -> None:
        return None

    def optional_third(payload: Any, ctx: JobContext, extra: int = 1) -> None:
        return None

    assert HandlerSpec.from_function("a", AsyncCallable()).is_async
    assert HandlerSpec.from_function("a", star).wants_ctx
    assert HandlerSpec.from_function("a", optional_third).wants_ctx


def test_uncallable_signatures_are_refused() -> None:
    def no_args() -> None:
        return None

    def three(payload: Any, ctx: Any, more: Any) -> None:
        return None

    def kw_only(payload: Any, *, needed: int) -> None:
        return None

    for func in (no_args, three, kw_only):
        with pytest.raises(ValueError):
            HandlerSpec.from_function("t", func)


def test_duplicate_type_with_another_function_is_refused() -> None:
    reg = Registry()

    def first(payload: Any) -> None:
        return None

    def second(payload: Any) -> None:
        return None

    reg.handler("dup")(first)
    reg.handler("dup", max_attempts=4)(first)  # same function: re-registration is fine
    assert reg.get("dup").retry.max_attempts == 4
    with pytest.raises(ValueError, match="already handled"):
        reg.handler("dup")(second)
    assert reg.get("dup").func is first


@pytest.mark.parametrize("name", ["", "has space", "x" * 129, "slash/no", "ünicode", "a\n"])
def test_invalid_type_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid job type"):
        Registry().handler(name)(lambda payload: None)


def test_valid_type_names() -> None:
    reg = Registry()
    for name in ("a", "report.build", "ns:kind-1_x", "x" * 128):
        reg.handler(name)(lambda payload: None)
    assert len(reg.types()) == 4


@pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan, 8 * 24 * 3600.0])
def test_invalid_timeouts(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        Registry().handler("t", timeout_s=timeout)(lambda payload: None)


def _module_level_sync(payload: Any) -> None:
    return None


async def _module_level_async(payload: Any) -> None:
    return None


def test_process_isolation_is_for_module_level_sync_handlers() -> None:
    reg = Registry()
    reg.handler("iso", isolation="process")(_module_level_sync)
    assert reg.get("iso").isolation == "process"
    assert reg.handler("plain")(_module_level_sync) is _module_level_sync
    assert reg.get("plain").isolation == "thread"
    with pytest.raises(ValueError, match="sync handlers"):
        reg.handler("iso.async", isolation="process")(_module_level_async)

    def local(payload: Any) -> None:
        return None

    with pytest.raises(ValueError, match="module-level"):
        reg.handler("iso.local", isolation="process")(local)
    with pytest.raises(ValueError, match="isolation"):
        reg.handler("iso.bad", isolation="fork")(_module_level_sync)  # type: ignore[arg-type]


def test_invalid_retry_options() -> None:
    with pytest.raises(ValueError):
        Registry().handler("t", max_attempts=0)
    with pytest.raises(ValueError):
        Registry().handler("t", max_attempts=101)


def test_unknown_type_error_code() -> None:
    reg = Registry()
    reg.handler("secret.internal")(lambda payload: None)
    with pytest.raises(UnknownJobType) as info:
        reg.get("nope")
    assert info.value.code == ErrorCode.UNKNOWN_JOB_TYPE
    assert info.value.to_dict()["code"] == "unknown_job_type"
    assert "nope" in info.value.message
    assert "secret.internal" not in info.value.message


def test_unregister() -> None:
    reg = Registry()
    reg.handler("gone")(lambda payload: None)
    reg.unregister("gone")
    reg.unregister("never-there")
    assert "gone" not in reg


# --- payloads -------------------------------------------------------------------------------


def _spec(model: type[BaseModel] | None) -> HandlerSpec:
    return HandlerSpec.from_function("t", lambda payload: None, payload=model)


def test_strict_validation_rejects_a_numeric_string() -> None:
    with pytest.raises(ValidationError) as info:
        _spec(Report).validate_payload({"count": "10"})
    assert info.value.code == ErrorCode.VALIDATION_ERROR
    assert info.value.details == [
        {"loc": ["count"], "msg": "Input should be a valid integer", "type": "int_type"}
    ]


@pytest.mark.parametrize("bad", [{"count": 1.5}, {"count": True}, {}, [1], "text", None])
def test_strict_validation_rejects_other_bad_payloads(bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        _spec(Report).validate_payload(bad)
    assert isinstance(info.value.details, list) and info.value.details
    assert set(info.value.details[0]) == {"loc", "msg", "type"}


def test_validation_returns_the_json_value_to_store() -> None:
    stored = _spec(Report).validate_payload({"count": 3})
    assert stored == {"count": 3, "title": "untitled"}
    assert _spec(Report).validate_payload(Report(count=2)) == {"count": 2, "title": "untitled"}


def test_python_objects_validate_like_their_json_spelling() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    from_python = _spec(Event).validate_payload({"at": when})
    from_http = _spec(Event).validate_payload({"at": "2026-01-02T03:04:05Z"})
    assert from_python == from_http == {"at": "2026-01-02T03:04:05Z"}


def test_without_a_model_any_json_value_is_accepted() -> None:
    for value in ({"a": [1, 2.5, None, True]}, [1, "x"], "s", 7, None):
        assert _spec(None).validate_payload(value) == value


@pytest.mark.parametrize("bad", [{"x": math.nan}, [math.inf], {"k": object()}])
def test_non_json_payloads_are_rejected(bad: Any) -> None:
    for model in (None, Report):
        with pytest.raises(ValidationError, match="not JSON"):
            _spec(model).validate_payload(bad)


def test_parse_payload_round_trips() -> None:
    spec = _spec(Event)
    stored = spec.validate_payload({"at": "2026-01-02T03:04:05.250+02:00"})
    parsed = spec.parse_payload(json.dumps(stored))
    assert isinstance(parsed, Event)
    assert parsed.at == datetime(2026, 1, 2, 1, 4, 5, 250000, tzinfo=UTC)
    assert _spec(None).parse_payload('{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize("text", ["{not json", '{"count": "many"}', "[]"])
def test_parse_payload_rejects_bad_records(text: str) -> None:
    with pytest.raises(ValidationError):
        _spec(Report).parse_payload(text)


def test_parse_payload_without_model_rejects_bad_json() -> None:
    with pytest.raises(ValidationError, match="not JSON"):
        _spec(None).parse_payload("{oops")


# --- load_app -------------------------------------------------------------------------------


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("cvt_app_"):
            del sys.modules[name]


def test_load_app_imports_every_module(app_dir: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    type_name = f"cvt.{suffix}"
    (app_dir / f"cvt_app_a_{suffix}.py").write_text(
        "from conveyor.handlers import handler\n"
        f"@handler({type_name!r})\n"
        "def run(payload):\n"
        "    return payload\n"
    )
    (app_dir / f"cvt_app_b_{suffix}.py").write_text("LOADED = True\n")
    try:
        load_app(f" cvt_app_a_{suffix} ,cvt_app_b_{suffix},, ")
        assert type_name in default_registry
        assert sys.modules[f"cvt_app_b_{suffix}"].LOADED is True
    finally:
        default_registry.unregister(type_name)


def test_load_app_with_nothing_to_load() -> None:
    load_app("")
    load_app(" , ")


def test_load_app_missing_module(app_dir: Path) -> None:
    name = f"cvt_app_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValidationError) as info:
        load_app(name)
    assert info.value.code == ErrorCode.VALIDATION_ERROR
    assert name in info.value.message
    assert "ModuleNotFoundError" in info.value.message
    assert info.value.details == {"module": name}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise RuntimeError('kaboom at import')\n", "kaboom at import"),
        ("def broken(:\n", "SyntaxError"),
    ],
)
def test_load_app_module_failing_at_import(app_dir: Path, source: str, expected: str) -> None:
    name = f"cvt_app_bad_{uuid.uuid4().hex[:8]}"
    (app_dir / f"{name}.py").write_text(source)
    with pytest.raises(ValidationError) as info:
        load_app(name)
    assert name in info.value.message
    assert expected in info.value.message


# --- the built-in fake ----------------------------------------------------------------------


def test_fake_is_registered_on_import() -> None:
    spec = default_registry.get("fake")
    assert spec.func is fake_handler
    assert spec.payload_model is FakePayload
    assert spec.is_async and spec.wants_ctx
    assert spec.retry == RetryPolicy(
        max_attempts=5, backoff=ExponentialBackoff(base_s=0.1, cap_s=2.0)
    )


def test_fake_payload_defaults() -> None:
    assert default_registry.get("fake").validate_payload({}) == {
        "duration_ms": 0,
        "fail_times": 0,
        "permanent": False,
        "result": None,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"duration_ms": -1},
        {"duration_ms": 3_600_001},
        {"fail_times": -2},
        {"duration_ms": "10"},
        {"unknown": 1},
        {"permanent": "yes"},
    ],
)
def test_fake_payload_rejections(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        default_registry.get("fake").validate_payload(bad)


async def test_fake_returns_its_result() -> None:
    spec = default_registry.get("fake")
    stored = spec.validate_payload({"result": {"rows": [1, 2]}})
    payload = spec.parse_payload(json.dumps(stored))
    assert await fake_handler(payload, _ctx()) == {"rows": [1, 2]}


def test_fake_without_duration_never_suspends() -> None:
    coro = fake_handler(FakePayload(result="now"), _ctx())
    with pytest.raises(StopIteration) as info:
        coro.send(None)
    assert info.value.value == "now"


async def test_fake_sleeps_for_its_duration() -> None:
    started = time.monotonic()
    assert await fake_handler(FakePayload(duration_ms=50, result=1), _ctx()) == 1
    assert time.monotonic() - started >= 0.045


async def test_fake_fails_retryably_then_succeeds() -> None:
    payload = FakePayload(fail_times=2, result="ok")
    for attempt in (1, 2):
        with pytest.raises(JobError, match=f"fake failure {attempt} of 2") as info:
            await fake_handler(payload, _ctx(attempt=attempt))
        assert not isinstance(info.value, PermanentError)
        policy = default_registry.get("fake").retry
        delay = policy.next_delay_s(attempt, info.value)
        assert delay is not None and 0 <= delay <= 2.0
    assert await fake_handler(payload, _ctx(attempt=3)) == "ok"


async def test_fake_permanent_failure() -> None:
    with pytest.raises(PermanentError) as info:
        await fake_handler(FakePayload(permanent=True), _ctx())
    assert info.value.code == ErrorCode.PERMANENT_FAILURE
    assert default_registry.get("fake").retry.next_delay_s(1, info.value) is None


def test_job_context_last_attempt() -> None:
    assert _ctx(attempt=5, max_attempts=5).is_last_attempt
    assert not _ctx(attempt=1, max_attempts=5).is_last_attempt
