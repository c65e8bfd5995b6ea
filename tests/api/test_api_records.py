"""Both brokers behind the API: what the API accepts is stored as given and reads back, and
what it refuses is never stored (the SQLite broker once stored a run_at in year 0, then every
listing of its queue answered 500)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from conveyor.brokers.base import AckItem
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.ids import split_job_id
from conveyor.jobs import RESULT_PREVIEW_CHARS
from conveyor.web import create_app
from tests.api.api_support import locs, settings_for
from tests.support.asgi import error_of, serve
from tests.support.env import REDIS_URL


@pytest.fixture(params=["redis", "sqlite"])
async def any_client(
    request: pytest.FixtureRequest, prefix: str, tmp_path: Path
) -> AsyncIterator[AsyncConveyor]:
    url = REDIS_URL if request.param == "redis" else f"sqlite:///{tmp_path / 'cv.db'}"
    client = AsyncConveyor.from_url(url, key_prefix=prefix)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def any_api(prefix: str, any_client: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    url = any_client.broker.url if isinstance(any_client.broker, RedisBroker) else "sqlite://"
    settings = settings_for(prefix, broker_url=url or REDIS_URL)
    async with serve(create_app(any_client, settings)) as http:
        yield http


@pytest.mark.parametrize("run_at", ["0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z",
                                    "0001-01-01T00:00:00Z"])
async def test_a_run_at_no_broker_can_store_is_refused(
    any_api: httpx.AsyncClient, run_at: str
) -> None:
    for path, body in (("/v1/jobs", {"type": "fake", "run_at": run_at}),
                       ("/v1/jobs/batch", {"jobs": [{"type": "fake"},
                                                    {"type": "fake", "run_at": run_at}]})):
        r = await any_api.post(path, json=body)
        assert r.status_code == 422, r.text
        assert error_of(r)["code"] == "validation_error"
        assert any(loc[-1] == "run_at" for loc in locs(r)), r.text
    listing = await any_api.get("/v1/jobs")
    assert listing.status_code == 200 and listing.json()["items"] == []


async def test_what_the_api_accepts_reads_back_unchanged(any_api: httpx.AsyncClient) -> None:
    r = await any_api.post("/v1/jobs", json={"type": "fake", "run_at": "1970-01-01T00:00:00Z",
                                             "timeout_s": 0.0001})
    assert r.status_code == 201, r.text
    job = (await any_api.get(f"/v1/jobs/{r.json()['id']}")).json()
    assert job["run_at"] == "1970-01-01T00:00:00Z"  # not rewritten to "now"
    assert job["state"] == "queued"
    assert job["timeout_s"] == 0.001  # rounded up to a whole millisecond, never 0
    assert (await any_api.get("/v1/jobs")).status_code == 200


async def _damage(client: AsyncConveyor, job_id: str, redis_field: str, column: str,
                  value: str) -> None:
    """Overwrite one stored field, past every check (the store's own client)."""
    queue, uid = split_job_id(job_id)
    broker = client.broker
    if isinstance(broker, RedisBroker):
        await broker.client.hset(broker.keys.queue(queue).job(uid), redis_field, value)
        return
    assert isinstance(broker, SqliteBroker)
    with closing(sqlite3.connect(broker.path, isolation_level=None)) as conn:
        conn.execute(f"UPDATE jobs SET {column} = ? WHERE queue = ? AND uid = ?",
                     (value, queue, uid))


@pytest.mark.parametrize(("redis_field", "column", "value"), [
    ("result", "result", "1" * 5000), ("created", "created_ms", "yesterday"),
    ("payload", "payload", "{not json"),
], ids=["5000-digit result", "corrupt timestamp", "payload not JSON"])
async def test_a_corrupt_record_is_shown_as_corrupt_never_a_500(
    any_api: httpx.AsyncClient, any_client: AsyncConveyor, redis_field: str, column: str,
    value: str,
) -> None:
    ids = [r.job_id for r in await any_client.enqueue_many(
        [JobRequest("fake", {}, "rq") for _ in range(3)])]
    bad = ids[1]
    await _damage(any_client, bad, redis_field, column, value)
    if redis_field == "result":  # what listings read instead of the result
        await _damage(any_client, bad, "rprev", "result_preview", value)

    one = await any_api.get(f"/v1/jobs/{bad}")
    assert one.status_code == 409, one.text
    err = error_of(one)
    assert err["code"] == "corrupt_job" and redis_field.split("_")[0] in err["message"]
    assert err["details"] == {"job_id": bad}
    for path in ("/v1/jobs", "/v1/jobs?queue=rq", "/v1/jobs?queue=rq&state=queued"):
        listing = await any_api.get(path)
        assert listing.status_code == 200, (path, listing.text)
        items = {j["id"]: j for j in listing.json()["items"]}
        assert set(items) == set(ids)
        assert items[bad]["last_error"]["code"] == "corrupt_job"
        assert all(items[i]["last_error"] is None for i in ids if i != bad)
    page = await any_api.get("/ui/f/queues/rq")
    assert page.status_code == 200 and "corrupt_job" in page.text
    job_page = await any_api.get(f"/ui/f/jobs/{bad}")
    assert job_page.status_code == 200 and "corrupt" in job_page.text
    for action in ("cancel", "retry"):
        r = await any_api.post(f"/v1/jobs/{bad}/{action}")
        assert r.status_code in (409, 200), r.text  # never a 500


async def test_listings_show_a_preview_of_a_large_result(
    any_api: httpx.AsyncClient, any_client: AsyncConveyor
) -> None:
    (res,) = await any_client.enqueue_many([JobRequest("fake", {}, "rq")])
    (d,) = (await any_client.broker.fetch("rq", 1, "w", 60_000)).deliveries
    big = json.dumps(["x" * 50_000])
    assert await any_client.broker.ack([AckItem(d.job_id, d.token, big)]) == [True]
    (item,) = (await any_api.get("/v1/jobs?queue=rq")).json()["items"]
    assert item["result"] is None and item["result_truncated"] is True
    assert item["result_preview"] == big[:RESULT_PREVIEW_CHARS]
    whole = (await any_api.get(f"/v1/jobs/{res.job_id}")).json()
    assert whole["result"] == ["x" * 50_000] and whole["result_truncated"] is False
