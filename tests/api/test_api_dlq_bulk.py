"""`POST /v1/dlq/redrive` and `POST /v1/dlq/purge`: ids or filters, dry run, rate, target
queue; strict validation (422, nothing changed)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from conveyor.brokers.base import FailItem
from conveyor.client import AsyncConveyor
from conveyor.dlq.pacing import TokenBucket
from conveyor.jobs import JobState
from tests.support.asgi import error_of


async def _dead(conveyor: AsyncConveyor, n: int, *, type: str = "t", code: str = "e",
                queue: str = "mail") -> list[str]:
    raw = AsyncConveyor(conveyor.broker, validate_types=False)
    ids = [(await raw.enqueue(type, i, queue=queue)).id for i in range(n)]
    batch = await conveyor.broker.fetch(queue, n, "cvt-worker", 30_000)
    items = [FailItem(d.job_id, d.token, code, "boom") for d in batch.deliveries]
    assert await conveyor.broker.fail(items) == [JobState.DEAD] * n
    return ids


async def _states(conveyor: AsyncConveyor, ids: list[str]) -> list[str]:
    return [str((await conveyor.get(i)).state) for i in ids]


async def test_redrive_by_ids(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    a, b = await _dead(conveyor, 2)
    live = (await api.post("/v1/jobs", json={"type": "fake", "queue": "mail"})).json()["id"]
    res = await api.post("/v1/dlq/redrive", json={"ids": [a, live]})
    assert res.status_code == 200
    assert res.json() == {"moved": 1, "ids": [a], "moved_to": {}, "skipped": [live], "done": True}
    assert await _states(conveyor, [a, b]) == ["queued", "dead"]
    entry = (await conveyor.get(a)).history[-1]
    assert (entry.outcome, entry.worker) == ("redriven", "api")


async def test_redrive_by_filters(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    a_x = await _dead(conveyor, 2, type="a", code="x")
    a_y = await _dead(conveyor, 1, type="a", code="y", queue="other")
    b_x = await _dead(conveyor, 1, type="b", code="x")
    res = await api.post("/v1/dlq/redrive", json={"type": "a", "error_code": "x"})
    assert res.status_code == 200 and sorted(res.json()["ids"]) == sorted(a_x)
    res = await api.post("/v1/dlq/redrive", json={"queue": "other"})
    assert res.json()["ids"] == a_y
    died = (await conveyor.get(b_x[0])).finished_at
    assert died is not None
    before = await api.post("/v1/dlq/redrive", json={"died_before": died.isoformat()})
    assert before.json()["moved"] == 0
    after = await api.post("/v1/dlq/redrive", json={"died_after": died.isoformat()})
    assert after.json()["ids"] == b_x


async def test_dry_runs_change_nothing(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    ids = await _dead(conveyor, 3)
    snapshot = [await conveyor.get(i) for i in ids]
    res = await api.post("/v1/dlq/redrive", json={"queue": "mail", "dry_run": True,
                                                  "target_queue": "elsewhere"})
    assert res.status_code == 200
    assert res.json() == {"would_move": 3, "ids": sorted(ids), "skipped": []}
    res = await api.post("/v1/dlq/purge", json={"ids": ids, "dry_run": True})
    assert res.json() == {"would_purge": 3, "ids": ids, "skipped": []}
    assert [await conveyor.get(i) for i in ids] == snapshot


async def test_rate_limits_a_redrive(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    n, rate = 20, 40
    ids = await _dead(conveyor, n)
    started = time.monotonic()
    res = await api.post("/v1/dlq/redrive", json={"queue": "mail", "rate": rate})
    elapsed = time.monotonic() - started
    assert res.json()["moved"] == n and await _states(conveyor, ids) == ["queued"] * n
    assert elapsed >= (n - TokenBucket(rate).burst) / rate


async def test_redrive_into_another_queue(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    ids = await _dead(conveyor, 2)
    res = await api.post("/v1/dlq/redrive", json={"ids": ids, "target_queue": "retry"})
    doc = res.json()
    assert doc["moved"] == 2 and set(doc["moved_to"]) == set(ids)
    for old, new in doc["moved_to"].items():
        assert (await api.get(f"/v1/jobs/{old}")).status_code == 404
        job = (await api.get(f"/v1/jobs/{new}")).json()
        assert job["queue"] == "retry" and job["state"] == "queued"
        assert old in job["history"][-1]["message"]


async def test_purge_by_filters(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    a = await _dead(conveyor, 2, type="a")
    b = await _dead(conveyor, 1, type="b")
    res = await api.post("/v1/dlq/purge", json={"type": "a"})
    assert res.status_code == 200
    assert res.json()["purged"] == 2 and sorted(res.json()["ids"]) == sorted(a)
    for job_id in a:
        assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 404
    assert await _states(conveyor, b) == ["dead"]


BAD: list[tuple[str, dict[str, Any]]] = [
    ("nothing selected", {}),
    ("ids and a filter", {"ids": ["mail:" + "0" * 32], "type": "t"}),
    ("empty ids", {"ids": []}),
    ("not a job id", {"ids": ["nope"]}),
    ("id outside the queue", {"ids": ["mail:" + "0" * 32], "queue": "other"}),
    ("unknown field", {"queue": "mail", "force": True}),
    ("bad queue", {"queue": "a b"}),
    ("bad type", {"type": "a b"}),
    ("bad error code", {"error_code": ""}),
    ("naive time", {"died_before": "2030-01-01T00:00:00"}),
    ("rate 0", {"queue": "mail", "rate": 0}),
    ("rate as a string", {"queue": "mail", "rate": "5"}),
    ("rate too high", {"queue": "mail", "rate": 1e9}),
    ("bad target", {"queue": "mail", "target_queue": "x/y"}),
    ("limit 0", {"queue": "mail", "limit": 0}),
    ("dry_run as a string", {"queue": "mail", "dry_run": "yes"}),
]


@pytest.mark.parametrize(("why", "body"), BAD, ids=[why for why, _ in BAD])
async def test_bad_selections_are_422_and_change_nothing(
    api: httpx.AsyncClient, conveyor: AsyncConveyor, why: str, body: dict[str, Any]
) -> None:
    ids = await _dead(conveyor, 1)
    for path in ("/v1/dlq/redrive", "/v1/dlq/purge"):
        if path.endswith("purge") and ("rate" in body or "target_queue" in body):
            continue  # purge has no such fields: a 422 for another reason
        res = await api.post(path, json=body)
        assert res.status_code == 422, (why, path, res.text)
        assert error_of(res)["code"] == "validation_error"
    assert await _states(conveyor, ids) == ["dead"]


async def test_an_empty_death_range_selects_nothing(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    """`died_after` >= `died_before` is an empty range: nothing matches (not a 422, which
    the schema cannot state)."""
    ids = await _dead(conveyor, 1)
    empty = {"died_after": "2030-01-02T00:00:00Z", "died_before": "2030-01-01T00:00:00Z"}
    res = await api.post("/v1/dlq/redrive", json=empty)
    assert res.json() == {"moved": 0, "ids": [], "moved_to": {}, "skipped": [], "done": True}
    res = await api.post("/v1/dlq/purge", json={**empty, "dry_run": True})
    assert res.json() == {"would_purge": 0, "ids": [], "skipped": []}
    assert await _states(conveyor, ids) == ["dead"]


async def test_purge_refuses_redrive_fields_and_non_json(api: httpx.AsyncClient) -> None:
    res = await api.post("/v1/dlq/purge", json={"queue": "mail", "rate": 5})
    assert res.status_code == 422
    res = await api.post("/v1/dlq/redrive", content=b"queue=mail",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert res.status_code == 415
    for method in ("GET", "DELETE"):  # resources of their own, not a job id
        assert (await api.request(method, "/v1/dlq/redrive")).status_code == 405
        assert (await api.request(method, "/v1/dlq/purge")).status_code == 405


async def test_selection_rule_errors_are_field_errors_under_body(api: httpx.AsyncClient) -> None:
    """The rules of `conveyor.dlq.selection` answer like the schema's own checks."""
    for body in ({}, {"ids": ["mail:" + "0" * 32], "error_code": "x"}):
        for path in ("/v1/dlq/redrive", "/v1/dlq/purge"):
            res = await api.post(path, json=body)
            assert res.status_code == 422 and error_of(res)["code"] == "validation_error"
            (detail,) = error_of(res)["details"]
            assert detail["loc"] == ["body", "ids"] and detail["type"] == "value_error"
