"""Flow control over HTTP: `PUT/GET/DELETE /v1/queues/{name}/limits`, `limit_key` at enqueue,
the `limited` count of `GET /v1/queues` and the busiest keys of `GET /v1/queues/{name}/keys`.
"""

from __future__ import annotations

import httpx
import pytest

from conveyor.client import AsyncConveyor
from tests.support.asgi import error_of

LIMITS = {"concurrency": 10, "rate": {"count": 100, "per_s": 1, "burst": 20},
          "key_concurrency": 1, "key_rate": {"count": 5, "per_s": 1, "burst": 1},
          "key_weights": {"acme": 4}}


async def test_limits_put_get_delete(api: httpx.AsyncClient) -> None:
    empty = {"queue": "qf", "concurrency": None, "rate": None, "key_concurrency": None,
             "key_rate": None, "key_weights": None}
    none = await api.get("/v1/queues/qf/limits")
    assert none.status_code == 404 and error_of(none)["code"] == "limits_not_found"
    assert error_of(none)["details"] == {"queue": "qf"}
    res = await api.put("/v1/queues/qf/limits", json=LIMITS)
    assert res.status_code == 200, res.text
    assert res.json() == {"queue": "qf", **LIMITS}
    assert (await api.get("/v1/queues/qf/limits")).json() == {"queue": "qf", **LIMITS}
    res = await api.delete("/v1/queues/qf/limits")
    assert res.status_code == 200 and res.json() == empty
    gone = await api.get("/v1/queues/qf/limits")  # what DELETE removed is gone
    assert gone.status_code == 404 and error_of(gone)["code"] == "limits_not_found"
    again = await api.delete("/v1/queues/qf/limits")  # idempotent
    assert again.status_code == 200 and again.json() == empty


@pytest.mark.parametrize("bad", [
    {"concurrency": 0}, {"concurrency": -2}, {"rate": {"count": 5, "per_s": 0}},
    {"key_rate": {"count": 0}}, {"key_rate": {"count": 1, "burst": 0}},
    {"key_weights": {"a": 0}}, {"key_weights": {"x" * 129: 1}}, {"nope": 1},
    {"concurrency": "3"},
])
async def test_bad_limits_are_422_and_change_nothing(
    api: httpx.AsyncClient, bad: dict[str, object]
) -> None:
    assert (await api.put("/v1/queues/qf/limits", json={"concurrency": 2})).status_code == 200
    res = await api.put("/v1/queues/qf/limits", json=bad)
    assert res.status_code == 422, res.text
    assert error_of(res)["code"] == "validation_error"
    assert (await api.get("/v1/queues/qf/limits")).json()["concurrency"] == 2


async def test_bad_queue_name_and_limit_key_are_422(api: httpx.AsyncClient) -> None:
    res = await api.put("/v1/queues/bad%20name/limits", json={"concurrency": 1})
    assert res.status_code == 422
    res = await api.post("/v1/jobs", json={"type": "fake", "queue": "qf",
                                           "limit_key": "k" * 129})
    assert res.status_code == 422
    assert error_of(res)["code"] == "validation_error"
    assert (await api.get("/v1/queues/qf")).status_code == 404  # nothing was enqueued


async def test_limited_count_and_busiest_keys(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    await api.put("/v1/queues/qf/limits", json={"key_concurrency": 1})
    for key in ["acme"] * 3 + ["globex"]:
        res = await api.post("/v1/jobs", json={"type": "fake", "queue": "qf", "limit_key": key})
        assert res.status_code == 201 and res.json()["limit_key"] == key
    batch = await conveyor.broker.fetch("qf", 10, "w", 60_000)
    assert len(batch.deliveries) == 2  # one per key
    doc = (await api.get("/v1/queues")).json()
    (q,) = [i for i in doc["items"] if i["name"] == "qf"]
    assert q["limited"] == 2 and q["counts"]["queued"] == 2 and q["counts"]["running"] == 2
    keys = (await api.get("/v1/queues/qf/keys", params={"limit": 5})).json()
    assert keys["queue"] == "qf"
    assert [(k["key"], k["backlog"], k["running"], k["held"]) for k in keys["items"]] == [
        ("acme", 2, 1, True)]
    assert (await api.get("/v1/queues/qf/keys", params={"limit": 0})).status_code == 422


async def test_metrics_of_held_back_work(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    from tests.api.test_api_ops import sample

    await api.put("/v1/queues/qf/limits", json={"key_concurrency": 1})
    for _ in range(3):
        await api.post("/v1/jobs", json={"type": "fake", "queue": "qf", "limit_key": "acme"})
    assert len((await conveyor.broker.fetch("qf", 10, "w", 60_000)).deliveries) == 1
    text = (await api.get("/metrics")).text
    assert sample(text, "conveyor_queue_limited", queue="qf") == 2
    assert sample(text, "conveyor_flow_held_total", queue="qf", reason="key_concurrency") >= 1


async def test_dashboard_queue_page_shows_limits_and_busiest_keys(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    plain = (await api.get("/ui/f/queues/qf")).text
    assert "flow-card" not in plain
    await api.put("/v1/queues/qf/limits", json={"key_concurrency": 1,
                                                "key_rate": {"count": 5, "per_s": 1},
                                                "key_weights": {"<b>acme</b>": 3}})
    for key in ["<b>acme</b>"] * 3 + ["globex"] * 2:
        await api.post("/v1/jobs", json={"type": "fake", "queue": "qf", "limit_key": key})
    await conveyor.broker.fetch("qf", 10, "w", 60_000)
    html = (await api.get("/ui/f/queues/qf")).text
    assert 'id="flow-card"' in html and 'id="keys-table"' in html
    assert "5 per 1 s, burst 1" in html and "3 waiting behind limits" in html
    assert "&lt;b&gt;acme&lt;/b&gt;" in html and "<b>acme</b>" not in html  # escaped
    assert "a permit" in html  # held by key_concurrency until a permit comes back
