"""`GET /v1/jobs/{id}/logs` over the real Redis: the lines a job's handler wrote (sent as
the lease holder sends them), oldest first with their attempt; 404 for an unknown job; a
stored line that does not parse shows as such instead of failing the request."""

from __future__ import annotations

import httpx

from conveyor.brokers.base import LogAppend
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.ids import split_job_id
from conveyor.joblogs import encode_line
from tests.support.asgi import error_of


async def test_logs_of_a_job(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    job = await conveyor.enqueue("fake", {}, queue="logs")
    empty = await api.get(f"/v1/jobs/{job.id}/logs")
    assert empty.status_code == 200 and empty.json() == {"job_id": job.id, "lines": []}

    (d,) = (await conveyor.broker.fetch("logs", 1, "w", 30_000)).deliveries
    sent = [encode_line(1_767_225_600_000, "INFO", 1, "hello"),
            encode_line(1_767_225_600_500, "ERROR", 1, "it <b>broke</b>")]
    assert await conveyor.broker.append_logs([LogAppend(job.id, d.token, sent)]) == [True]
    r = await api.get(f"/v1/jobs/{job.id}/logs")
    assert r.status_code == 200
    assert r.json() == {"job_id": job.id, "lines": [
        {"at": "2026-01-01T00:00:00Z", "level": "INFO", "attempt": 1, "message": "hello"},
        {"at": "2026-01-01T00:00:00.500000Z", "level": "ERROR", "attempt": 1,
         "message": "it <b>broke</b>"},
    ]}

    assert isinstance(conveyor.broker, RedisBroker)
    queue, uid = split_job_id(job.id)
    await conveyor.broker.client.rpush(conveyor.broker.keys.queue(queue).logs(uid),
                                       "not json")
    damaged = (await api.get(f"/v1/jobs/{job.id}/logs")).json()["lines"]
    assert len(damaged) == 3 and "does not parse" in damaged[-1]["message"]


async def test_unknown_and_malformed_ids(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/jobs/default:" + "0" * 32 + "/logs")
    assert missing.status_code == 404 and error_of(missing)["code"] == "job_not_found"
    assert (await api.get("/v1/jobs/nope/logs")).status_code == 422
