"""Bearer keys from `CONVEYOR_API_KEYS`: every /v1 route (and /metrics) needs one; the probes
stay open; without keys the API warns at start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.api.auth import ApiKeys, bearer_token
from conveyor.client import AsyncConveyor
from conveyor.web import create_app
from tests.api.api_support import settings_for
from tests.support.asgi import error_of, serve

JOB_ID = "default:" + "0" * 32
V1_CALLS = [
    ("POST", "/v1/jobs"), ("POST", "/v1/jobs/batch"), ("GET", "/v1/jobs"),
    ("GET", f"/v1/jobs/{JOB_ID}"), ("POST", f"/v1/jobs/{JOB_ID}/retry"),
    ("POST", f"/v1/jobs/{JOB_ID}/cancel"), ("GET", "/v1/queues"),
    ("POST", "/v1/queues/default/pause"), ("POST", "/v1/queues/default/resume"),
    ("GET", "/v1/dlq"), ("DELETE", f"/v1/dlq/{JOB_ID}"), ("GET", "/v1/workers"),
    ("GET", "/metrics"),
]


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-route"])
async def locked_api(
    request: pytest.FixtureRequest, prefix: str, conveyor: AsyncConveyor
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(conveyor, settings_for(prefix, api_keys=" key-one , key-two,"),
                     fast_path=request.param)
    async with serve(app) as http:
        yield http


@pytest.mark.parametrize(("method", "path"), V1_CALLS)
async def test_every_v1_route_needs_a_key(
    locked_api: httpx.AsyncClient, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic key-one"},
                    {"Authorization": "Bearer key-one-and-more"}, {"Authorization": "Bearer"},
                    {"Authorization": "key-one"}):
        r = await locked_api.request(method, path, json={"type": "fake"}, headers=headers)
        assert r.status_code == 401, (method, path, headers, r.text)
        assert error_of(r)["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"


async def test_either_key_opens_the_routes(locked_api: httpx.AsyncClient) -> None:
    for key in ("key-one", "key-two"):
        auth = {"Authorization": f"Bearer {key}"}
        created = await locked_api.post("/v1/jobs", json={"type": "fake"}, headers=auth)
        assert created.status_code == 201, created.text
        got = await locked_api.get(f"/v1/jobs/{created.json()['id']}", headers=auth)
        assert got.status_code == 200
        assert (await locked_api.get("/v1/queues", headers=auth)).status_code == 200
        assert (await locked_api.get("/metrics", headers=auth)).status_code == 200
    lower = await locked_api.get("/v1/queues", headers={"Authorization": "bearer key-one"})
    assert lower.status_code == 200


async def test_probes_and_docs_stay_open(locked_api: httpx.AsyncClient) -> None:
    assert (await locked_api.get("/healthz")).json() == {"status": "ok"}
    assert (await locked_api.get("/readyz")).json() == {"status": "ready", "warnings": []}
    doc = (await locked_api.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert (await locked_api.get("/docs")).status_code == 200
    assert (await locked_api.get("/redoc")).status_code == 200


async def test_warns_at_start_without_keys(
    prefix: str, conveyor: AsyncConveyor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.api")
    async with serve(create_app(conveyor, settings_for(prefix))) as http:
        assert (await http.get("/v1/queues")).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name == "conveyor.api"] == [
        "api_auth_disabled"]
    caplog.clear()
    async with serve(create_app(conveyor, settings_for(prefix, api_keys="k"))):
        pass
    assert not [r for r in caplog.records if r.getMessage() == "api_auth_disabled"]


def test_key_checks() -> None:
    keys = ApiKeys(["alpha", "béta"])
    assert keys.accepts("alpha") and keys.accepts("béta".encode().decode("latin-1"))
    assert not keys.accepts("alph") and not keys.accepts("") and not keys.accepts(None)
    assert not ApiKeys([])
    assert bearer_token("Bearer  abc ") == "abc"
    assert bearer_token("Token abc") is None and bearer_token(None) is None
