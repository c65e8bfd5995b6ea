"""The DLQ policy as the `@handler` decorator declares it, and the token bucket's pacing
(with a fake clock: no waiting)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from conveyor.dlq.pacing import TokenBucket
from conveyor.dlq.policy import DlqPolicy, build_policy
from conveyor.errors import ValidationError
from conveyor.handlers import Registry, handler
from conveyor.jobs import Job


def _noop(payload: object) -> None:
    return None


def _hook(job: Job) -> None:
    return None


def test_the_decorator_declares_a_policy() -> None:
    reg = Registry()
    reg.handler("a", redrive_after=timedelta(minutes=5), max_redrives=4, on_dead=_hook)(_noop)
    handler("b", registry=reg, on_dead=[_hook, _hook])(_noop)
    handler("c", registry=reg, max_attempts=2)(_noop)  # the old signature still works
    a, b, c = (reg.get(t).dlq_policy for t in "abc")
    assert a == DlqPolicy(redrive_after_s=300.0, max_redrives=4, on_dead=(_hook,))
    assert b is not None and not b.redrives and b.on_dead == (_hook, _hook)
    assert c is None


def test_defaults_and_bad_policies() -> None:
    policy = build_policy(redrive_after=10)
    assert policy is not None and policy.max_redrives == 3 and not policy.redrive_poison
    assert build_policy() is None
    for kw in (
        {"max_redrives": 2},  # a bound without a delay means nothing
        {"redrive_poison": True},
        {"redrive_after": -1},
        {"redrive_after": float("nan")},
        {"redrive_after": 1, "max_redrives": 0},
        {"redrive_after": 1, "max_redrives": 101},
        {"on_dead": ["not callable"]},
    ):
        with pytest.raises(ValueError):
            build_policy(**kw)


def test_the_selector_skips_poison_unless_opted_in() -> None:
    sel = DlqPolicy(redrive_after_s=2.0, max_redrives=5).selector("t", now_ms=10_000)
    assert (sel.type, sel.died_before_ms, sel.max_redrives) == ("t", 8_001, 5)
    assert sel.skip_error_codes == ("lease_expired",)
    opted = DlqPolicy(redrive_after_s=0.0, redrive_poison=True).selector("t", now_ms=5)
    assert opted.skip_error_codes == () and opted.died_before_ms == 6


async def test_the_bucket_paces_after_its_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    bucket = TokenBucket(20.0, clock=lambda: now[0])
    assert bucket.burst == 2
    for _ in range(10):
        await bucket.take(2)
    assert now[0] == pytest.approx((20 - 2) / 20.0)  # 20 jobs: all but the burst paced
    with pytest.raises(ValueError):
        await bucket.take(3)
    for bad in (0, -1, float("inf"), 1e9):
        with pytest.raises(ValidationError):
            TokenBucket(bad)
