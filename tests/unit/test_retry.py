"""Retry strategies: the bounds of every backoff and the policy's retry-or-dead decision."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.errors import JobError, PermanentError, RetryLater
from conveyor.jobs import MAX_ATTEMPTS_LIMIT
from conveyor.retry import (
    MAX_DELAY_S,
    ExponentialBackoff,
    FixedBackoff,
    LinearBackoff,
    RetryPolicy,
    clamp_delay_s,
)

attempts = st.integers(min_value=1, max_value=10**6)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
# Errors a handler may raise; PermanentError subclasses must behave like PermanentError.


class _SmtpPermanent(PermanentError):
    pass


retryable_errors = st.sampled_from(
    [JobError("boom"), RuntimeError("bug"), TimeoutError(), RetryLater(5.0)]
)


# --- backoffs -------------------------------------------------------------------------------


@given(base=seconds, cap=seconds, jitter=st.booleans(), attempt=attempts)
def test_exponential_stays_within_zero_and_cap(
    base: float, cap: float, jitter: bool, attempt: int
) -> None:
    delay = ExponentialBackoff(base_s=base, cap_s=cap, jitter=jitter)(attempt)
    assert 0 <= delay <= cap


@given(base=seconds, cap=seconds, a=attempts, b=attempts)
def test_exponential_without_jitter_is_monotone(base: float, cap: float, a: int, b: int) -> None:
    backoff = ExponentialBackoff(base_s=base, cap_s=cap, jitter=False)
    low, high = sorted((a, b))
    assert backoff(low) <= backoff(high)


@given(base=seconds, cap=seconds, attempt=attempts)
def test_jitter_never_exceeds_the_unjittered_delay(base: float, cap: float, attempt: int) -> None:
    jittered = ExponentialBackoff(base_s=base, cap_s=cap, jitter=True)(attempt)
    exact = ExponentialBackoff(base_s=base, cap_s=cap, jitter=False)(attempt)
    assert 0 <= jittered <= exact


def test_exponential_exact_values() -> None:
    backoff = ExponentialBackoff(base_s=1.0, cap_s=300.0, jitter=False)
    assert [backoff(n) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_jitter_spreads_delays() -> None:
    backoff = ExponentialBackoff(base_s=1.0, cap_s=300.0)
    delays = {backoff(20) for _ in range(50)}
    assert len(delays) > 1
    assert all(0 <= d <= 300 for d in delays)


@pytest.mark.parametrize("attempt", [1024, 1025, 2101, 10**9, 10**100])
def test_huge_attempts_do_not_overflow(attempt: int) -> None:
    assert ExponentialBackoff(base_s=1.0, cap_s=60.0, jitter=False)(attempt) == 60.0
    assert ExponentialBackoff(base_s=5e-324, cap_s=60.0, jitter=False)(10**9) == 60.0
    assert LinearBackoff(step_s=1e-300, cap_s=60.0)(attempt) <= 60.0
    assert LinearBackoff(step_s=2.0, cap_s=60.0)(attempt) == 60.0


@given(step=seconds, cap=seconds, attempt=attempts)
def test_linear_stays_within_zero_and_cap(step: float, cap: float, attempt: int) -> None:
    assert 0 <= LinearBackoff(step_s=step, cap_s=cap)(attempt) <= cap


def test_linear_and_fixed_values() -> None:
    linear = LinearBackoff(step_s=2.5, cap_s=10.0)
    assert [linear(n) for n in range(1, 6)] == [2.5, 5.0, 7.5, 10.0, 10.0]
    assert [FixedBackoff(3.0)(n) for n in (1, 2, 1000)] == [3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ExponentialBackoff(base_s=-1.0),
        lambda: ExponentialBackoff(cap_s=-0.5),
        lambda: ExponentialBackoff(base_s=math.nan),
        lambda: ExponentialBackoff(cap_s=math.inf),
        lambda: FixedBackoff(-1.0),
        lambda: LinearBackoff(step_s=-1.0),
        lambda: LinearBackoff(step_s=1.0, cap_s=-1.0),
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(max_attempts=MAX_ATTEMPTS_LIMIT + 1),
        lambda: RetryPolicy(max_attempts=True),
    ],
)
def test_invalid_arguments_raise_value_error(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff()(0)
    with pytest.raises(ValueError):
        RetryPolicy().next_delay_s(0, JobError("x"))


# --- the policy -----------------------------------------------------------------------------


@given(
    max_attempts=st.integers(1, MAX_ATTEMPTS_LIMIT),
    attempt=attempts,
    exc=st.sampled_from([PermanentError("no"), _SmtpPermanent("no")]),
)
def test_permanent_error_never_retries(
    max_attempts: int, attempt: int, exc: PermanentError
) -> None:
    assert RetryPolicy(max_attempts=max_attempts).next_delay_s(attempt, exc) is None


@given(
    max_attempts=st.integers(1, MAX_ATTEMPTS_LIMIT),
    extra=st.integers(0, 10**6),
    exc=retryable_errors,
)
def test_exhausted_attempts_never_retry(max_attempts: int, extra: int, exc: Exception) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    assert policy.next_delay_s(max_attempts + extra, exc) is None


@given(max_attempts=st.integers(2, MAX_ATTEMPTS_LIMIT), data=st.data())
def test_retryable_error_before_the_limit_gets_a_bounded_delay(
    max_attempts: int, data: st.DataObject
) -> None:
    attempt = data.draw(st.integers(1, max_attempts - 1))
    policy = RetryPolicy(max_attempts=max_attempts, backoff=ExponentialBackoff(cap_s=30.0))
    delay = policy.next_delay_s(attempt, JobError("transient"))
    assert delay is not None
    assert 0 <= delay <= 30.0


@given(delay=st.floats(min_value=0, max_value=MAX_DELAY_S, allow_nan=False))
def test_retry_later_delay_is_exact_and_ignores_the_cap(delay: float) -> None:
    policy = RetryPolicy(max_attempts=3, backoff=ExponentialBackoff(cap_s=1.0))
    assert policy.next_delay_s(1, RetryLater(delay)) == delay


def test_retry_later_is_clamped_to_a_year() -> None:
    assert RetryPolicy().next_delay_s(1, RetryLater(10 * MAX_DELAY_S)) == MAX_DELAY_S
    assert RetryPolicy().next_delay_s(1, RetryLater(math.inf)) == MAX_DELAY_S


def test_retry_later_on_the_last_attempt_goes_dead() -> None:
    assert RetryPolicy(max_attempts=2).next_delay_s(2, RetryLater(1.0)) is None


def test_job_max_attempts_overrides_the_policy() -> None:
    policy = RetryPolicy(max_attempts=3, backoff=FixedBackoff(1.0))
    assert policy.next_delay_s(3, JobError("x")) is None
    assert policy.next_delay_s(3, JobError("x"), max_attempts=5) == 1.0
    assert policy.next_delay_s(1, JobError("x"), max_attempts=1) is None


@given(
    value=st.one_of(
        st.floats(),  # includes NaN, +/-inf and negatives
        st.integers(min_value=-(10**400), max_value=10**400),
    ),
    attempt=st.integers(1, 99),
)
def test_callable_backoff_is_clamped(value: float, attempt: int) -> None:
    policy = RetryPolicy(max_attempts=100, backoff=lambda _attempt: value)
    delay = policy.next_delay_s(attempt, JobError("x"))
    assert delay is not None
    assert 0 <= delay <= MAX_DELAY_S


def test_callable_backoff_receives_the_failed_attempt() -> None:
    seen: list[int] = []

    def backoff(attempt: int) -> float:
        seen.append(attempt)
        return attempt * 10.0

    policy = RetryPolicy(max_attempts=5, backoff=backoff)
    assert [policy.next_delay_s(n, JobError("x")) for n in (1, 2, 4)] == [10.0, 20.0, 40.0]
    assert seen == [1, 2, 4]


def test_clamp_special_values() -> None:
    assert clamp_delay_s(math.nan) == 0.0
    assert clamp_delay_s(-math.inf) == 0.0
    assert clamp_delay_s(-3.0) == 0.0
    assert clamp_delay_s(math.inf) == MAX_DELAY_S
    assert clamp_delay_s(2.5) == 2.5


def test_default_policy() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff == ExponentialBackoff(base_s=1.0, cap_s=300.0, jitter=True)
