"""How the Redis broker cuts a batch into calls: by count and by bytes, never losing order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conveyor.brokers.redis.batches import chunks


def test_chunks_by_bytes_and_by_count() -> None:
    assert chunks([4, 4, 4, 4], max_bytes=8, max_items=10) == [range(0, 2), range(2, 4)]
    assert chunks([1] * 5, max_bytes=100, max_items=2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert chunks([3, 50, 3], max_bytes=10, max_items=10) == [range(0, 1), range(1, 2),
                                                             range(2, 3)]
    assert chunks([], max_bytes=10, max_items=10) == []


@given(st.lists(st.integers(0, 100)), st.integers(1, 200), st.integers(1, 20))
def test_chunks_cover_every_item_once_in_order_within_bounds(
    sizes: list[int], max_bytes: int, max_items: int
) -> None:
    parts = chunks(sizes, max_bytes, max_items)
    assert [i for r in parts for i in r] == list(range(len(sizes)))
    for r in parts:
        assert len(r) <= max_items
        assert sum(sizes[i] for i in r) <= max_bytes or len(r) == 1
