"""Both brokers behind the API: what the API accepts is stored as given and reads back, and
what it refuses is never stored (the SQLite broker once stored a run_at in year 0, then every
listing of its queue answered 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_support import REDIS_URL, error_of, locs, serve, settings_for

from conveyor.api import create_app
from conveyor.client import AsyncConveyor


@pytest.fixture(params=["redis", "sqlite"])
async def any_api(
    request: pytest.FixtureRequest, prefix: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    url = REDIS_URL if request.param == "redis" else f"sqlite:///{tmp_path / 'cv.db'}"
    client = AsyncConveyor.from_url(url, key_prefix=prefix)
    await client.connect()
    try:
        async with serve(create_app(client, settings_for(prefix, broker_url=url))) as http:
            yield http
    finally:
        await client.close()


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
