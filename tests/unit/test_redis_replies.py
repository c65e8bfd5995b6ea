"""The typed decoders of the Lua scripts' replies (brokers/redis/replies.py): each names its
script's fields, and a reply of another shape is a ValueError, never a half-read value."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.brokers.redis.replies import (
    DeadScanReply,
    EnqueuePart,
    FetchReply,
    ForgetReply,
    FoundJob,
    HeartbeatPart,
    ReapReply,
    RetryReply,
    ints,
)
from conveyor.jobs import JobState

UID = "0" * 32


def test_a_fetch_reply_reads_its_rows_and_an_absent_due_time() -> None:
    reply = FetchReply.decode([1000, -1, [[UID, "n.0", "t", "{}", 1, 3, None, "900", '{"tp":1}'],
                                          [UID, "n.1", "t", "{}", 2, 3, "5000"]], 0])
    assert (reply.now_ms, reply.next_due_ms, reply.set_aside) == (1000, None, 0)
    first, second = reply.rows
    assert (first.token, first.timeout_ms, first.due_ms, first.trace) == ("n.0", None, 900,
                                                                          '{"tp":1}')
    assert (second.attempts, second.timeout_ms, second.due_ms, second.trace) == (2, "5000",
                                                                                 None, "")


def test_the_other_replies_read_their_fields() -> None:
    assert ReapReply.decode([1, 2, 3, 4]) == ReapReply(1, 2, 3, 4)
    assert HeartbeatPart.decode([[UID], [UID, "api"]]) == HeartbeatPart([UID], {UID: "api"})
    part = EnqueuePart.decode([5, [7, [UID, "", "bogus", "x", "9"]]])
    assert part.rows == [7, FoundJob(UID, "", JobState.DEAD, 0, 9)]  # damaged: read as DEAD
    assert DeadScanReply.decode([[UID], "", "", 1]) == DeadScanReply([UID], None, True)
    assert DeadScanReply.decode([[], 12, UID, 0]).cursor == f"12:{UID}"
    assert RetryReply.decode([0, ["dead"]]).outcomes == ["dead"]
    assert ForgetReply.decode(1) == ForgetReply(True, None)
    assert ForgetReply.decode([2, 0, 0, 0, 0, 0, 0]).held == {"listed": 2}
    assert ForgetReply.decode([1, 0, 1, 0, 0, 0, 0]).held == {"queued": 1}


@pytest.mark.parametrize("decode, reply", [
    (FetchReply.decode, [1000, -1, []]),
    (FetchReply.decode, [1000, -1, [[UID, "n.0"]], 0]),
    (ReapReply.decode, "OK"),
    (HeartbeatPart.decode, None),
    (EnqueuePart.decode, [5]),
    (ForgetReply.decode, [1, 2]),
    (lambda r: ints(r, 6, "counts"), [1, 2, 3, 4, 5, 6, 7]),
])
def test_a_reply_of_another_shape_is_a_value_error(decode: Any, reply: Any) -> None:
    with pytest.raises(ValueError, match=r"\.lua replied"):
        decode(reply)
