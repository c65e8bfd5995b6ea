"""Many queues (issue 11, item 5): listing, the dashboard, /metrics and idempotent batch
replays never fan out one concurrent broker call per queue or per job, so more queues or
hits than the connection pool holds still answer, and enqueues beside them are not refused.
"""

from __future__ import annotations

import asyncio

import httpx

from conveyor.client import AsyncConveyor, JobRequest
from tests.support.asgi import error_of

#: more than redis-py's default pool (100 connections)
MANY = 150


async def _many_queues(conveyor: AsyncConveyor, n: int = MANY) -> list[str]:
    names = [f"q{i:05d}" for i in range(n)]
    await conveyor.enqueue_many([JobRequest("fake", {}, q) for q in names])
    return names


async def test_more_queues_than_pool_connections_list_and_render(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    names = await _many_queues(conveyor)
    listed = await api.get("/v1/queues")
    assert listed.status_code == 200, listed.text
    assert [q["name"] for q in listed.json()["items"]] == names
    overview = await api.get("/ui/f/overview")
    assert overview.status_code == 200, overview.text
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert "conveyor_broker_up 1.0" in metrics.text
    assert f'conveyor_queue_paused{{queue="{names[-1]}"}} 0.0' in metrics.text


async def test_enqueues_succeed_while_many_queues_are_polled(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    await _many_queues(conveyor)

    async def poll() -> list[int]:
        answers = await asyncio.gather(*(api.get("/v1/queues") for _ in range(3)))
        return [r.status_code for r in answers]

    polls, enqueues = await asyncio.gather(
        poll(), asyncio.gather(*(api.post("/v1/jobs", json={"type": "fake"})
                                 for _ in range(20))),
    )
    assert polls == [200] * 3
    assert [r.status_code for r in enqueues] == [201] * 20


async def test_an_idempotent_batch_replay_of_many_jobs(api: httpx.AsyncClient) -> None:
    body = {"jobs": [{"type": "fake", "idempotency_key": f"k-{i}"} for i in range(MANY)]}
    first = await api.post("/v1/jobs/batch", json=body)
    assert first.status_code == 201, first.text[:300]
    again = await api.post("/v1/jobs/batch", json=body)
    assert again.status_code == 200, again.text[:300]  # nothing created
    assert again.json()["created"] == [False] * MANY
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]


async def test_ten_thousand_queues_are_listed_in_pages(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    names = await _many_queues(conveyor, 10_000)
    await conveyor.pause(names[1])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = await api.get("/v1/queues", params=params)
        assert page.status_code == 200, page.text[:300]
        doc = page.json()
        assert set(doc) == {"items", "next_cursor"}
        seen += [q["name"] for q in doc["items"]]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == names and pages == 10
    first = (await api.get("/v1/queues", params={"limit": 2})).json()
    assert [q["name"] for q in first["items"]] == names[:2]
    assert first["items"][1]["paused"] and first["next_cursor"] == names[1]
    assert first["items"][0]["counts"]["queued"] == 1
    default = (await api.get("/v1/queues")).json()  # the default page is the largest
    assert len(default["items"]) == 1000 and default["next_cursor"] == names[999]
    last = (await api.get("/v1/queues", params={"cursor": names[-1]})).json()
    assert last == {"items": [], "next_cursor": None}
    bad = await api.get("/v1/queues", params={"cursor": "not a queue!"})
    assert bad.status_code == 422

    overview = await api.get("/ui/f/overview")
    assert overview.status_code == 200
    assert "10,000 queues" in overview.text and "Showing the first 200" in overview.text
    assert overview.text.count("data-queue-row=") == 200
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.text.count('conveyor_queue_jobs{queue="q09999"') == 6


async def test_an_empty_queue_is_deleted_and_a_busy_one_refused(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    job = (await api.post("/v1/jobs", json={"type": "fake", "queue": "tmp"})).json()
    busy = await api.delete("/v1/queues/tmp")
    assert busy.status_code == 409
    assert error_of(busy)["code"] == "invalid_state"
    assert error_of(busy)["details"] == {"queue": "tmp", "counts": {"queued": 1}}
    assert (await api.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
    await conveyor.broker.expire_finished("tmp")  # retention has not passed: nothing goes
    assert (await api.delete("/v1/queues/tmp")).status_code == 409

    await conveyor.pause("idle")
    gone = await api.delete("/v1/queues/idle")
    assert gone.status_code == 204 and gone.content == b""
    again = await api.delete("/v1/queues/idle")
    assert again.status_code == 404 and error_of(again)["code"] == "queue_not_found"
    assert (await api.delete("/v1/queues/bad%20name")).status_code == 422
    assert "idle" not in [q["name"] for q in (await api.get("/v1/queues")).json()["items"]]


async def test_get_queue_answers_for_known_queues_only(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    never = await api.get("/v1/queues/never-used")
    assert never.status_code == 404 and error_of(never)["code"] == "queue_not_found"
    assert error_of(never)["details"] == {"queue": "never-used"}
    await conveyor.pause("held")  # paused before its first job: known, zero counts
    held = await api.get("/v1/queues/held")
    assert held.status_code == 200 and held.json()["paused"] is True
    assert set(held.json()["counts"].values()) == {0}
    job = (await api.post("/v1/jobs", json={"type": "fake", "queue": "once"})).json()
    once = await api.get("/v1/queues/once")
    assert once.status_code == 200 and once.json()["counts"]["queued"] == 1
    await api.put("/v1/queues/held/limits", json={"concurrency": 2})
    for path in ("", "/series", "/keys", "/limits"):
        assert (await api.get(f"/v1/queues/held{path}")).status_code == 200, path
    assert (await api.delete("/v1/queues/held")).status_code == 204
    # what DELETE removed is gone, its sub-resources too (limits: limits_not_found)
    for path, code in (("", "queue_not_found"), ("/series", "queue_not_found"),
                       ("/keys", "queue_not_found"), ("/limits", "limits_not_found")):
        gone = await api.get(f"/v1/queues/held{path}")
        assert gone.status_code == 404 and error_of(gone)["code"] == code, path
    assert (await api.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
