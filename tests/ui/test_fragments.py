"""The dashboard's data fragments (`/ui/f/...`) in process: the app served through ASGI on a
real broker (the shared Redis under the test's prefix, and SQLite in a temp file), each route's
normal answer, its empty state, bad input (answered 200 with the problem in the fragment, or
the API's 422 `validation_error` past a length bound) and the key rule (401 `unauthorized`
without a key when the API has keys; the page shells stay open).

The browser tests (test_dashboard*.py) cover what the pages do with these fragments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import conveyor.handlers  # noqa: F401  (registers the built-in `fake` job type)
from conveyor.brokers import broker_from_url
from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState
from conveyor.settings import Settings
from conveyor.web import create_app
from conveyor.worker import Worker
from tests.support.asgi import error_of, serve
from tests.support.env import REDIS_URL
from tests.support.inproc import make_settings, running
from tests.support.waits import wait_for_state, wait_until

KEY = "fragment-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUEUE = "frag"
UID = "0" * 32
#: every data fragment of the dashboard
FRAGMENTS = ["/ui/f/overview", f"/ui/f/queues/{QUEUE}", f"/ui/f/jobs/{QUEUE}:{UID}",
             "/ui/f/dlq", "/ui/f/workers", "/ui/f/webhooks", "/ui/f/schedules"]
#: the page shells: no data, so no key
PAGES = ["/ui/", f"/ui/queues/{QUEUE}", "/ui/dlq", "/ui/workers", "/ui/webhooks",
         "/ui/schedules"]

Served = tuple[httpx.AsyncClient, AsyncConveyor]


@pytest.fixture(params=["redis", "sqlite"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return REDIS_URL if request.param == "redis" else f"sqlite:///{tmp_path / 'ui.db'}"


@pytest.fixture
async def dashboard(broker_url: str, prefix: str) -> AsyncIterator[Served]:
    """The app (with key KEY) on this test's broker, and a client of the same broker."""
    client = AsyncConveyor(broker_from_url(broker_url, key_prefix=prefix))
    await client.connect()
    settings = Settings(broker_url=broker_url, key_prefix=prefix, api_keys=KEY,
                        webhook_allow_private=True)
    try:
        async with serve(create_app(client, settings), headers=AUTH) as http:
            yield http, client
    finally:
        await client.close()


async def html(http: httpx.AsyncClient, path: str, **params: str) -> str:
    r = await http.get(path, params=params)
    assert r.status_code == 200, (path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    return r.text


def problem(text: str) -> bool:
    return 'class="card problem"' in text


async def enqueue(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await http.post("/v1/jobs", json={"type": "fake", "queue": QUEUE, **body})
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


async def run_until(client: AsyncConveyor, job_id: str, state: JobState) -> None:
    worker = Worker(client.broker, queues=[QUEUE], concurrency=1, registry=client.registry,
                    settings=make_settings())
    async with running(worker):
        await wait_for_state(client, job_id, {state})


# --- empty state ---------------------------------------------------------------------------


async def test_every_fragment_has_an_empty_state(dashboard: Served) -> None:
    http, _ = dashboard
    assert "No queues yet." in await html(http, "/ui/f/overview")
    assert "jobs here right now." in await html(http, f"/ui/f/queues/{QUEUE}")
    assert "No job " in await html(http, f"/ui/f/jobs/{QUEUE}:{UID}")
    assert "Nothing here." in await html(http, "/ui/f/dlq")
    assert "No live worker." in await html(http, "/ui/f/workers")
    assert "No webhook subscriptions." in await html(http, "/ui/f/webhooks")
    assert "No schedule yet." in await html(http, "/ui/f/schedules")


# --- normal answers --------------------------------------------------------------------------


async def test_overview_queue_and_job_show_an_enqueued_job(dashboard: Served) -> None:
    http, _ = dashboard
    job = await enqueue(http, payload={"result": "shown-result"})
    overview = await html(http, "/ui/f/overview")
    assert QUEUE in overview and "No queues yet." not in overview
    queue = await html(http, f"/ui/f/queues/{QUEUE}")
    assert job["id"].rpartition(":")[2] in queue
    assert job["id"].rpartition(":")[2] in await html(http, f"/ui/f/queues/{QUEUE}",
                                                     state="queued", type="fake")
    assert "No queued jobs" not in await html(http, f"/ui/f/queues/{QUEUE}", state="queued")
    assert "No running jobs" in await html(http, f"/ui/f/queues/{QUEUE}", state="running")
    page = await html(http, f"/ui/f/jobs/{job['id']}")
    assert job["id"] in page and "shown-result" in page and not problem(page)


async def test_queue_search_by_id_and_by_fragment(dashboard: Served) -> None:
    http, _ = dashboard
    job = await enqueue(http)
    uid = job["id"].rpartition(":")[2]
    assert "looked up by id" in await html(http, f"/ui/f/queues/{QUEUE}", q=uid)
    found = await html(http, f"/ui/f/queues/{QUEUE}", q=uid[:6])
    assert uid in found and "ids containing" in found
    assert "no job has this id" in await html(http, f"/ui/f/queues/{QUEUE}", q=UID)


async def test_dlq_lists_a_dead_job_and_filters_by_code(dashboard: Served) -> None:
    http, client = dashboard
    job = await enqueue(http, payload={"permanent": True})
    await run_until(client, job["id"], JobState.DEAD)
    dlq = await html(http, "/ui/f/dlq")
    assert job["id"].rpartition(":")[2] in dlq and "Nothing here." not in dlq
    assert job["id"].rpartition(":")[2] in await html(http, "/ui/f/dlq", queue=QUEUE)
    assert "Nothing here." in await html(http, "/ui/f/dlq", error_code="no_such_code")
    assert "Nothing here." in await html(http, "/ui/f/dlq", queue="other")


async def test_workers_shows_a_live_worker(dashboard: Served) -> None:
    http, client = dashboard
    worker = Worker(client.broker, queues=[QUEUE], concurrency=3, registry=client.registry,
                    settings=make_settings())
    async with running(worker):

        async def listed() -> bool:
            return bool(await client.workers())

        await wait_until(listed, "the worker to register")
        page = await html(http, "/ui/f/workers")
    assert "No live worker." not in page and QUEUE in page


async def test_webhooks_and_schedules_list_what_was_made(dashboard: Served) -> None:
    http, _ = dashboard
    made = await http.post("/v1/webhooks", json={"url": "https://1.1.1.1/hooks/frag",
                                                  "events": ["job.dead"]})
    assert made.status_code == 201, made.text
    hooks = await html(http, "/ui/f/webhooks")
    assert "https://1.1.1.1/hooks/frag" in hooks and made.json()["id"] in hooks
    secret = made.json().get("secret")
    assert secret is None or secret not in hooks  # never the secret
    put = await http.put("/v1/schedules/frag-nightly", json={
        "cron": "30 2 * * *", "job": {"type": "fake", "queue": QUEUE}})
    assert put.status_code == 201, put.text
    schedules = await html(http, "/ui/f/schedules")
    assert "frag-nightly" in schedules and "No schedule yet." not in schedules


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "says"), [
    ("/ui/f/queues/bad%20queue", {}, "is not a valid queue name"),
    (f"/ui/f/queues/{QUEUE}", {"type": "bad type!"}, "is not a valid job type"),
    (f"/ui/f/queues/{QUEUE}", {"state": "sleeping"}, "is not a state"),
    (f"/ui/f/queues/{QUEUE}", {"type": "fake\n"}, "is not a valid job type"),
    (f"/ui/f/queues/{QUEUE}", {"cursor": "not-a-cursor"}, "this page link has expired"),
    ("/ui/f/jobs/not-an-id", {}, "is not a job id"),
    (f"/ui/f/jobs/{QUEUE}:{'z' * 32}", {}, "is not a job id"),
    ("/ui/f/dlq", {"queue": "bad queue"}, "is not a valid queue name"),
    ("/ui/f/dlq", {"type": "bad type!"}, "is not a valid job type"),
    ("/ui/f/dlq", {"error_code": "Not A Code"}, "is not a valid error code"),
])
async def test_bad_input_is_a_problem_in_the_fragment(
    dashboard: Served, path: str, params: dict[str, str], says: str
) -> None:
    """200 (the page swaps in only successful answers) with the problem said, escaped."""
    http, _ = dashboard
    text = await html(http, path, **params)
    assert problem(text) and says in text
    assert "<script" not in text


@pytest.mark.parametrize(("path", "params"), [
    (f"/ui/f/queues/{QUEUE}", {"q": "x" * 201}),
    (f"/ui/f/queues/{QUEUE}", {"state": "x" * 201}),
    ("/ui/f/dlq", {"error_code": "x" * 201}),
    (f"/ui/f/queues/{QUEUE}", {"cursor": "x" * 5000}),
])
async def test_overlong_input_is_a_validation_error(
    dashboard: Served, path: str, params: dict[str, str]
) -> None:
    http, _ = dashboard
    r = await http.get(path, params=params)
    assert r.status_code == 422, r.text
    assert error_of(r)["code"] == "validation_error"


async def test_markup_in_input_is_escaped(dashboard: Served) -> None:
    http, _ = dashboard
    text = await html(http, "/ui/f/jobs/<img src=x onerror=alert(1)>")
    assert problem(text) and "<img" not in text and "&lt;img src=x" in text


# --- the key rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", FRAGMENTS)
async def test_every_fragment_needs_the_key(dashboard: Served, path: str) -> None:
    http, _ = dashboard
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {KEY}"}):
        r = await http.get(path, headers=headers)
        assert r.status_code == 401, (path, headers, r.text)
        assert error_of(r)["code"] == "unauthorized"
    assert (await http.get(path)).status_code == 200  # the client's own header: the key


@pytest.mark.parametrize("path", PAGES)
async def test_page_shells_need_no_key(dashboard: Served, path: str) -> None:
    http, _ = dashboard
    r = await http.get(path, headers={"Authorization": ""})
    assert r.status_code == 200, (path, r.text)
    assert r.headers["content-type"].startswith("text/html")
