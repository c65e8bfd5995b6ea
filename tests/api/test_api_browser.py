"""Cross-site requests from a browser cannot change anything, with auth off: state-changing
routes refuse bodies a form or a "simple" fetch can send (415) and a foreign `Origin` (403),
on the FastAPI routes and on the POST /v1/jobs fast path alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.client import AsyncConveyor
from conveyor.web import create_app
from tests.api.api_support import settings_for
from tests.support.asgi import BASE_URL, error_of, serve
from tests.support.keys import prefix_keys

#: what a <form> or a no-cors fetch can send without a CORS preflight
SIMPLE_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                "text/plain", "text/plain; charset=utf-8"]
OWN_ORIGIN = BASE_URL  # the app is served at http://testserver
JOB = b'{"type": "fake"}'


async def paused(api: httpx.AsyncClient, queue: str) -> bool:
    listed = (await api.get("/v1/queues")).json()["items"]
    return any(q["name"] == queue and q["paused"] for q in listed)


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
@pytest.mark.parametrize("path", ["/v1/queues/qx/pause", "/v1/queues/qx/resume"])
async def test_empty_body_routes_refuse_simple_content_types(
    api: httpx.AsyncClient, content_type: str, path: str
) -> None:
    for body in (b"", b"a=b"):
        r = await api.post(path, content=body, headers={"Content-Type": content_type})
        assert r.status_code == 415, (body, r.text)
        err = error_of(r)
        assert err["code"] == "unsupported_media_type"
        assert err["details"] == {"content_type": content_type}
    assert not await paused(api, "qx")


async def test_a_body_without_a_content_type_is_refused(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/queues/qx/pause", content=b"x")
    assert r.status_code == 415
    assert error_of(r)["code"] == "unsupported_media_type"
    assert not await paused(api, "qx")


async def test_job_actions_refuse_simple_content_types(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    job = await conveyor.enqueue("fake", {}, queue="qx", delay=60)
    for action in ("cancel", "retry"):
        r = await api.post(f"/v1/jobs/{job.id}/{action}", content=b"",
                           headers={"Content-Type": "text/plain"})
        assert r.status_code == 415, r.text
    assert str((await conveyor.get(job.id)).state) == "scheduled"


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver.evil",
                                    "https://testserver:8443", "http://testserver:81"])
async def test_a_foreign_origin_is_403_on_every_state_changing_route(
    api: httpx.AsyncClient, conveyor: AsyncConveyor, prefix: str, origin: str
) -> None:
    job = await conveyor.enqueue("fake", {}, queue="qx", delay=60)
    headers = {"Origin": origin, "Content-Type": "application/json"}
    for method, path, body in [
        ("POST", "/v1/queues/qx/pause", b""),
        ("POST", f"/v1/jobs/{job.id}/cancel", b""),
        ("POST", "/v1/jobs/batch", b'{"jobs": [{"type": "fake"}]}'),
        ("POST", "/v1/dlq/purge", b'{"queue": "qx"}'),
        ("DELETE", f"/v1/dlq/{job.id}", b""),
    ]:
        r = await api.request(method, path, content=body, headers=headers)
        assert r.status_code == 403, (path, r.text)
        err = error_of(r)
        assert err["code"] == "forbidden_origin"
        assert err["details"] == {"origin": origin}
    assert not await paused(api, "qx")
    assert str((await conveyor.get(job.id)).state) == "scheduled"
    # Reading is not changing: a foreign page cannot read the answer anyway (no CORS).
    assert (await api.get("/v1/queues", headers={"Origin": origin})).status_code == 200


async def test_own_origin_and_no_origin_pass(api: httpx.AsyncClient) -> None:
    """The dashboard's own calls (same origin, JSON or no body) and curl or server-to-server
    calls (no Origin) go through."""
    for headers in ({"Origin": OWN_ORIGIN}, {"Origin": "HTTP://TestServer"}, {}):
        assert (await api.post("/v1/queues/qx/pause", headers=headers)).status_code == 200
        r = await api.post("/v1/queues/qx/resume", content=b"{}",
                           headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", OWN_ORIGIN, None])
@pytest.mark.parametrize("content_type", [*SIMPLE_TYPES, "application/json"])
async def test_the_enqueue_fast_path_follows_the_same_rules(
    enqueue_api: httpx.AsyncClient, prefix: str, origin: str | None, content_type: str
) -> None:
    headers = {"Content-Type": content_type, **({"Origin": origin} if origin else {})}
    r = await enqueue_api.post("/v1/jobs", content=JOB, headers=headers)
    if origin == "http://evil.example":
        assert r.status_code == 403 and error_of(r)["code"] == "forbidden_origin"
    elif content_type != "application/json":
        assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"
    else:
        assert r.status_code == 201, r.text
        return
    assert await prefix_keys(prefix) == []


@pytest.fixture
async def allow_listed(prefix: str, conveyor: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(prefix, allowed_origins="https://ops.example, http://localhost:3000")
    async with serve(create_app(conveyor, settings)) as http:
        yield http


async def test_allowed_origins_extend_the_own_origin(allow_listed: httpx.AsyncClient) -> None:
    for origin in ("https://ops.example", "http://localhost:3000", OWN_ORIGIN):
        r = await allow_listed.post("/v1/queues/qx/pause", headers={"Origin": origin})
        assert r.status_code == 200, (origin, r.text)
    for origin in ("http://ops.example", "http://localhost:3001", "https://evil.example"):
        r = await allow_listed.post("/v1/queues/qx/pause", headers={"Origin": origin})
        assert r.status_code == 403, origin


def test_allowed_origins_are_validated() -> None:
    for bad in ("ops.example", "https://ops.example/path", "ftp://x", "https://"):
        with pytest.raises(ValueError, match="CONVEYOR_ALLOWED_ORIGINS"):
            settings_for("cvt-x", allowed_origins=bad)
