"""What a broker stores it can read back: every JobSpec is checked before it is stored, on
every broker, with the client's ranges, and nothing is rewritten on the way in (a run_at
before 1970 is not turned into "now", a sub-millisecond timeout is not turned into 0)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor
from conveyor.errors import ValidationError
from conveyor.ids import new_job_id
from conveyor.jobs import JobSpec, JobState
from tests.brokers.conformance import LONG_LEASE_MS, Q, assert_audit_ok, ms, total

#: 0001-01-01T00:00:00+23:59 is 23:59 before year 1 begins in UTC: year 0, not a datetime
YEAR_ZERO = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59)))


def _spec(**kw: Any) -> JobSpec:
    base = JobSpec(id=new_job_id(Q), type="t", queue=Q, payload_json="{}", max_attempts=3)
    return dataclasses.replace(base, **kw)


BAD_SPECS = {
    "run_at in year 0": {"run_at_ms": round(YEAR_ZERO.timestamp() * 1000)},
    "run_at before 1970": {"run_at_ms": -1000},
    "run_at past year 9999": {"run_at_ms": 253402300800000},
    "negative delay": {"delay_ms": -5},
    "delay over 365 days": {"delay_ms": 365 * 86400 * 1000 + 1},
    "delay and run_at": {"delay_ms": 5, "run_at_ms": 5},
    "priority out of range": {"priority": 1001},
    "max_attempts 0": {"max_attempts": 0},
    "timeout 0": {"timeout_s": 0.0},
    "timeout not finite": {"timeout_s": float("inf")},
    "empty type": {"type": ""},
    "type with a surrogate": {"type": "t\udcff"},
    "empty payload": {"payload_json": ""},
    "idempotency key not printable": {"idempotency_key": "k\n"},
    "queue and id disagree": {"queue": "other"},
}


@pytest.mark.parametrize("change", list(BAD_SPECS.values()), ids=list(BAD_SPECS))
async def test_a_spec_out_of_range_is_refused_and_nothing_is_stored(
    broker: Broker, change: dict[str, object]
) -> None:
    good = _spec()
    with pytest.raises(ValidationError):
        await broker.enqueue([good, _spec(**change)])
    assert total((await broker.stats([Q]))[Q]) == 0  # all or nothing: the good one neither
    await assert_audit_ok(broker)


async def test_the_client_refuses_run_at_outside_1970_to_a_year_ahead(broker: Broker) -> None:
    client = AsyncConveyor(broker, validate_types=False)
    for run_at in (YEAR_ZERO, datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)):
        with pytest.raises(ValidationError) as err:
            await client.enqueue("t", None, queue=Q, run_at=run_at)
        assert err.value.details[0]["loc"] == ["run_at"]
    assert total((await broker.stats([Q]))[Q]) == 0
    epoch = await client.enqueue("t", None, queue=Q, run_at=datetime(1970, 1, 1, tzinfo=UTC))
    assert epoch.state == JobState.QUEUED  # in the past: due now, and stored as given
    assert ms((await broker.get(epoch.id)).run_at) == 0
    await assert_audit_ok(broker)


async def test_a_sub_millisecond_timeout_rounds_up_to_one_millisecond(broker: Broker) -> None:
    client = AsyncConveyor(broker, validate_types=False)
    tiny = await client.enqueue("t", None, queue=Q, timeout_s=0.0001)
    exact = await client.enqueue("t", None, queue=Q, timeout_s=0.1)
    assert (await broker.get(tiny.id)).timeout_s == 0.001
    assert (await broker.get(exact.id)).timeout_s == 0.1
    batch = await broker.fetch(Q, 2, "w", LONG_LEASE_MS)
    assert [d.timeout_s for d in batch.deliveries] == [0.001, 0.1]
    await assert_audit_ok(broker)
