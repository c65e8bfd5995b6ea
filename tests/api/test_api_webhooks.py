"""`/v1/webhooks` over the real Redis: create (the secret shown once), list, read, delete,
what is refused (unknown event names, a malformed URL, a refused address) and how, and the
same keys and Origin guard as every state-changing route. URLs use public IP literals, so
no test depends on DNS."""

from __future__ import annotations

from typing import get_args

import httpx

from conveyor.api.webhook_schemas import WebhookEvent
from conveyor.brokers.base import WorkerInfo
from conveyor.client import AsyncConveyor
from conveyor.web import create_app
from conveyor.webhooks.model import WEBHOOK_EVENTS
from conveyor.webhooks.signing import check_secret
from conveyor.webhooks.store import webhook_store
from tests.api.api_support import settings_for
from tests.support.asgi import error_of, serve

URL = "https://1.1.1.1/hooks/conveyor"


def test_the_documented_event_names_are_the_model_s() -> None:
    assert get_args(WebhookEvent) == WEBHOOK_EVENTS


async def test_create_shows_the_secret_once_then_list_get_delete(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    made = await api.post("/v1/webhooks", json={
        "url": URL, "events": ["job.succeeded", "job.dead", "job.dead"], "queues": ["mail"]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["id"].startswith("wh_") and made.headers["location"] == f"/v1/webhooks/{body['id']}"
    check_secret(body["secret"])
    assert body["events"] == ["job.succeeded", "job.dead"]  # duplicates dropped
    assert body["queues"] == ["mail"] and body["types"] is None
    assert body["disabled_at"] is None and body["disabled_reason"] is None
    # what was stored is what was answered, secret included
    stored = await webhook_store(conveyor.broker).get(body["id"])
    assert stored is not None and stored.secret.get_secret_value() == body["secret"]

    one = await api.get(f"/v1/webhooks/{body['id']}")
    assert one.status_code == 200
    public = {k: v for k, v in body.items() if k != "secret"}
    assert one.json() == public
    listed = await api.get("/v1/webhooks")
    assert listed.status_code == 200 and listed.json() == {"items": [public]}
    assert body["secret"] not in listed.text and body["secret"] not in one.text

    gone = await api.delete(f"/v1/webhooks/{body['id']}")
    assert gone.status_code == 204 and gone.content == b""
    for again in (await api.delete(f"/v1/webhooks/{body['id']}"),
                  await api.get(f"/v1/webhooks/{body['id']}")):
        assert again.status_code == 404
        assert error_of(again)["code"] == "webhook_not_found"
    assert (await api.get("/v1/webhooks")).json() == {"items": []}


async def test_unknown_event_names_are_422_with_details(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/webhooks", json={"url": URL, "events": ["job.finished"]})
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "validation_error"
    assert err["details"][0]["loc"][:2] == ["body", "events"]
    assert (await api.get("/v1/webhooks")).json() == {"items": []}


async def test_malformed_urls_are_422_naming_the_reason(api: httpx.AsyncClient) -> None:
    cases = {
        "ftp://1.1.1.1/x": None,  # the schema's pattern: http(s) only
        "https://user:pw@1.1.1.1/x": "credentials",
        "https://1.1.1.1/x#frag": "fragment",
        "http://127.1/": "host",
    }
    for url, reason in cases.items():
        r = await api.post("/v1/webhooks", json={"url": url, "events": ["job.dead"]})
        assert r.status_code == 422, (url, r.text)
        err = error_of(r)
        assert err["code"] == "validation_error"
        assert err["details"][0]["loc"] == ["body", "url"], err
        if reason is not None:
            assert err["details"][0]["reason"] == reason, (url, err)
    assert (await api.get("/v1/webhooks")).json() == {"items": []}


async def test_refused_addresses_are_422_unless_private_is_allowed(
    prefix: str, conveyor: AsyncConveyor, api: httpx.AsyncClient
) -> None:
    for url, reason in {"http://127.0.0.1:8080/x": "loopback", "http://10.1.2.3/": "private",
                        "http://169.254.169.254/latest": "link_local",
                        "http://[::ffff:127.0.0.1]/": "loopback"}.items():
        r = await api.post("/v1/webhooks", json={"url": url, "events": ["job.dead"]})
        assert r.status_code == 422, url
        detail = error_of(r)["details"][0]
        assert detail["loc"] == ["body", "url"]
        assert detail["reason"] == reason, (url, detail)
        assert "address" in detail
    allowing = create_app(conveyor, settings_for(prefix, webhook_allow_private=True))
    async with serve(allowing) as http:
        r = await http.post("/v1/webhooks", json={"url": "http://127.0.0.1:8080/x",
                                                  "events": ["job.dead"]})
        assert r.status_code == 201, r.text


async def test_other_bad_bodies(api: httpx.AsyncClient) -> None:
    bad = [
        {"url": URL},
        {"url": URL, "events": []},
        {"url": URL, "events": ["job.dead"], "queues": []},
        {"url": URL, "events": ["job.dead"], "queues": ["no spaces"]},
        {"url": URL, "events": ["job.dead"], "types": ["conveyor.webhook"]},
        {"url": URL, "events": ["job.dead"], "secret": "whsec_x"},
        {"url": 5, "events": ["job.dead"]},
    ]
    for body in bad:
        r = await api.post("/v1/webhooks", json=body)
        assert r.status_code == 422, body
        assert error_of(r)["code"] == "validation_error"
    assert (await api.post("/v1/webhooks", content=b"{", headers={
        "Content-Type": "application/json"})).status_code == 400
    assert (await api.get("/v1/webhooks/not-an-id")).status_code == 422


async def test_keys_and_the_origin_guard(prefix: str, conveyor: AsyncConveyor) -> None:
    app = create_app(conveyor, settings_for(prefix, api_keys="k1"))
    body = {"url": URL, "events": ["job.dead"]}
    async with serve(app) as http:
        for r in (await http.post("/v1/webhooks", json=body), await http.get("/v1/webhooks")):
            assert r.status_code == 401
        auth = {"Authorization": "Bearer k1"}
        foreign = await http.post("/v1/webhooks", json=body,
                                  headers={**auth, "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert error_of(foreign)["code"] == "forbidden_origin"
        assert (await http.get("/v1/webhooks", headers=auth)).json() == {"items": []}
        made = await http.post("/v1/webhooks", json=body, headers=auth)
        assert made.status_code == 201
        sub_id = made.json()["id"]
        cross = await http.delete(f"/v1/webhooks/{sub_id}",
                                  headers={**auth, "Origin": "https://evil.example"})
        assert cross.status_code == 403
        assert (await http.get(f"/v1/webhooks/{sub_id}", headers=auth)).status_code == 200


async def test_readyz_warns_while_no_live_worker_serves_the_webhook_queue(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    assert (await api.get("/readyz")).json() == {"status": "ready", "warnings": []}
    sub = (await api.post("/v1/webhooks", json={"url": URL, "events": ["job.dead"]})).json()
    ready = await api.get("/readyz")
    assert ready.status_code == 200  # a warning, not unreadiness
    (warning,) = ready.json()["warnings"]
    assert warning["code"] == "webhooks_unserved" and "'webhooks'" in warning["message"]

    other = WorkerInfo("w-other", "h", 1, ["default"], 1, [], 0)
    await conveyor.broker.register_worker(other, 30)
    assert len((await api.get("/readyz")).json()["warnings"]) == 1  # serves another queue
    serving = WorkerInfo("w-hooks", "h", 2, ["default", "webhooks"], 1, [], 0)
    await conveyor.broker.register_worker(serving, 30)
    assert (await api.get("/readyz")).json()["warnings"] == []
    await conveyor.broker.deregister_worker("w-hooks")
    assert len((await api.get("/readyz")).json()["warnings"]) == 1
    assert (await api.delete(f"/v1/webhooks/{sub['id']}")).status_code == 204
    assert (await api.get("/readyz")).json()["warnings"] == []
