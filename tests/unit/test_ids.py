"""Job ids: `<queue>:<32 hex>`, monotonic within a process, strict parsing."""

from __future__ import annotations

import pytest

from conveyor import ids
from conveyor.errors import ValidationError
from conveyor.ids import is_job_id, new_job_id, new_uid, split_job_id


def test_uids_sort_in_creation_order_even_within_one_millisecond() -> None:
    uids = [new_uid() for _ in range(20_000)]
    assert uids == sorted(uids)
    assert len(set(uids)) == len(uids)


def test_a_clock_stepping_back_does_not_break_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_last", (0, 0))  # restored afterwards: later ids stay real-time
    a = new_uid(now_ms=2_000_000_000_000)
    b = new_uid(now_ms=1_000_000_000_000)
    assert b > a


def test_job_id_round_trip() -> None:
    job_id = new_job_id("emails.high-1")
    queue, uid = split_job_id(job_id)
    assert queue == "emails.high-1"
    assert len(uid) == 32
    assert is_job_id(job_id)


@pytest.mark.parametrize(
    "bad",
    ["", "nocolon", "q:" + "g" * 32, "q:" + "A" * 32, "q:abc", ":" + "0" * 32,
     "bad queue:" + "0" * 32, "q" * 65 + ":" + "0" * 32, "q:" + "0" * 33],
)
def test_malformed_ids_are_rejected(bad: str) -> None:
    assert not is_job_id(bad)
    with pytest.raises(ValidationError) as err:
        split_job_id(bad)
    assert err.value.code == "validation_error"
