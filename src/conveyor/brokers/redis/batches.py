"""Batches as script calls bounded by count and by bytes (invariant 9).

A batch of outcomes or jobs travels as one JSON array per script call (cheap to pack). One
call per queue was unbounded: eleven 48 MB results acked together passed Redis' limit on
one argument (`proto-max-bulk-len`, 512 MB), Redis reset the connection, and the worker
resent the same batch forever. Here each row is serialised on its own, and a queue's rows
are cut into calls of at most `max_items` rows and `max_bytes` bytes (a row larger than
that goes alone); the pipelines that carry the calls are bounded the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic_core import to_json

from conveyor.ids import split_job_id

T = TypeVar("T")
MAX_CALL_ITEMS = 1000
MAX_CALL_BYTES = 4 * 1024 * 1024
#: a pipeline carries at most this many calls' worth of bytes
PIPELINE_CALLS = 4

#: (script name, keys, args)
Call = tuple[str, list[str], list[Any]]


def chunks(sizes: Sequence[int], max_bytes: int, max_items: int) -> list[range]:
    """Consecutive ranges of items, each of at most `max_items` items and `max_bytes` bytes,
    except that an item larger than `max_bytes` makes a range of its own."""
    out: list[range] = []
    start = total = 0
    for i, size in enumerate(sizes):
        if i > start and (total + size > max_bytes or i - start >= max_items):
            out.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        out.append(range(start, len(sizes)))
    return out


def json_array(rows: Sequence[bytes]) -> bytes:
    """Rows serialised one by one (`to_json`), joined into the JSON array a script decodes."""
    return b"[" + b",".join(rows) + b"]"


def call_bytes(call: Call) -> int:
    return sum(len(a) for a in call[2] if isinstance(a, bytes | str))


def pipelines(calls: Sequence[Call], max_bytes: int) -> list[list[Call]]:
    """The calls in consecutive groups of at most `max_bytes` (a bigger call goes alone)."""
    return [[calls[i] for i in r] for r in chunks([call_bytes(c) for c in calls], max_bytes,
                                                  len(calls) or 1)]


@dataclass(slots=True)
class Batch:
    """Items grouped by queue, each queue's rows cut into bounded calls."""

    calls: list[Call] = field(default_factory=list)
    #: per call: its queue and the positions (in the caller's list) of the items it carries
    parts: list[tuple[str, list[int]]] = field(default_factory=list)

    def spread(self, replies: Sequence[Sequence[Any]], n: int) -> list[Any]:
        """Each call's reply (one value per item) back at its items' positions."""
        out: list[Any] = [None] * n
        for (_, positions), reply in zip(self.parts, replies, strict=True):
            for pos, value in zip(positions, reply, strict=True):
                out[pos] = value
        return out


def build(
    script: str, items: Sequence[T], job_id: Callable[[T], str],
    keys_of: Callable[[str], list[str]], row_of: Callable[[str, T], Any], *,
    max_bytes: int, max_items: int = MAX_CALL_ITEMS, lead: Sequence[Any] = (),
) -> Batch:
    """One `script` call per queue and bounded chunk of its items; each call's args are
    `lead` then the JSON array of `row_of(uid, item)` rows."""
    by_queue: dict[str, list[tuple[int, str, T]]] = defaultdict(list)
    for pos, item in enumerate(items):
        queue, uid = split_job_id(job_id(item))
        by_queue[queue].append((pos, uid, item))
    batch = Batch()
    for queue, group in by_queue.items():
        keys = keys_of(queue)
        rows = [to_json(row_of(uid, item)) for _, uid, item in group]
        for r in chunks([len(row) for row in rows], max_bytes, max_items):
            batch.calls.append((script, keys, [*lead, json_array([rows[i] for i in r])]))
            batch.parts.append((queue, [group[i][0] for i in r]))
    return batch
