"""Property-based fuzzing of the OpenAPI document with schemathesis, through ASGI against the
real Redis, with every check schemathesis has (`schemathesis run --checks all`): no 5xx;
every response as documented (status, content type, headers, schema); schema-valid requests
accepted and schema-invalid ones refused; the key enforced; 405 with `Allow` for undocumented
methods; deleted resources gone. Then the stateful phase: chains of calls along the
document's links (enqueue -> get / cancel / retry, pause -> resume, ...).

The app runs as in production: bearer keys set and a default sender for `email.send`
(`CONVEYOR_SMTP_FROM`, as a worker would have; enqueue does not depend on it), with a few dead
jobs so the DLQ operations reach real data. `CONVEYOR_FUZZ_EXAMPLES` sets the examples per
operation (default 30) and the stateful steps scale with it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from conveyor.brokers.base import SERIES_MINUTE_SPAN, FailItem
from conveyor.client import AsyncConveyor
from conveyor.settings import Settings, get_settings
from conveyor.web import create_app
from tests.support.env import REDIS_URL, new_prefix
from tests.support.keys import delete_prefix_sync

MAX_EXAMPLES = int(os.environ.get("CONVEYOR_FUZZ_EXAMPLES", "30"))
PREFIX = new_prefix()
KEY = "fuzz-key"
SENDER = "conveyor@example.com"
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# A webhook URL (`format: uri`) is accepted only when its host resolves to public addresses,
# which no schema can say: valid ones are generated as URLs of public IP literals (no DNS).
schemathesis.openapi.format("uri", st.builds(
    "{}://{}{}".format, st.sampled_from(["http", "https"]),
    st.sampled_from(["1.1.1.1", "8.8.8.8", "9.9.9.9", "[2606:4700:4700::1111]"]),
    st.from_regex(r"\A(/[a-z0-9]{0,12}){0,3}\Z")))

# Schedules (issue 15): a cron text is format `cron` and a zone format `iana-time-zone`
# (what JSON Schema cannot check: their meaning), generated from valid ones; and `end_at`
# after `start_at`, a rule across two
# fields, is asked of the bodies (the server answers 422 otherwise: tests/api/
# test_api_schedules.py).
schemathesis.openapi.format("cron", st.sampled_from([
    "* * * * *", "*/5 * * * *", "30 2 * * *", "0 0 1 1 *", "15 */2 * * 1-5", "0 9 * * MON",
    "*/10 * * * * *", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 0 L * *",
]))


schemathesis.openapi.format("iana-time-zone", st.sampled_from([
    "UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Europe/Dublin",
    "Asia/Kolkata", "US/Eastern", "Etc/GMT+12", "Pacific/Chatham",
]))


@schemathesis.hook("filter_body")
def _bounds_in_order(context: Any, body: Any) -> bool:
    if not isinstance(body, dict):
        return True
    start, end = body.get("start_at"), body.get("end_at")
    if not (isinstance(start, str) and isinstance(end, str)):
        return True
    try:
        return datetime.fromisoformat(end) > datetime.fromisoformat(start)
    except ValueError:
        return True


@schemathesis.hook("filter_case")
def _minute_steps_within_a_day(context: Any, case: Any) -> bool:
    """Per-minute series points (`step_s=60`) go back a day only, a rule across two query
    parameters (the server answers 422 otherwise: tests/api/test_api_observability.py); a
    case hook, since the coverage phase skips query hooks."""
    query = getattr(case, "query", None)
    if not isinstance(query, dict) or str(query.get("step_s")) != "60":
        return True
    minutes = str(query.get("minutes", ""))
    return not minutes.isdigit() or int(minutes) <= SERIES_MINUTE_SPAN


# Loaded at import (schemathesis makes one test per operation); the app connects lazily.
app = create_app(settings=Settings(broker_url=REDIS_URL, key_prefix=PREFIX, api_keys=KEY))
# `streamEvents` is an endless Server-Sent Events stream: a call never ends, so it cannot be
# fuzzed through ASGI; tests/api/test_api_events.py holds it to its documented responses.
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
    operation_id="streamEvents")


@schema.auth()
class BearerKey:
    """The key on every request, as schemathesis's auth (so `ignored_auth` knows it is the
    real one and probes without it and with a wrong one)."""

    def get(self, case: schemathesis.Case[Any], ctx: Any) -> str:
        return KEY

    def set(self, case: schemathesis.Case[Any], data: str, ctx: Any) -> None:
        case.headers["Authorization"] = f"Bearer {data}"  # a Case always has headers



async def _seed_dead(n: int) -> None:
    """Dead jobs in two queues, so listing, purging and redriving find some."""
    client = AsyncConveyor.from_url(REDIS_URL, key_prefix=PREFIX, validate_types=False)
    await client.connect()
    try:
        for queue in ("default", "mail"):
            for i in range(n):
                await client.enqueue("fake", {"result": i}, queue=queue)
            batch = await client.broker.fetch(queue, n, "cvt-fuzz", 30_000)
            await client.broker.fail([FailItem(d.job_id, d.token, "handler_error", "seeded")
                                      for d in batch.deliveries])
    finally:
        await client.close()


@pytest.fixture(scope="module", autouse=True)
def _server_as_in_production() -> Iterator[None]:
    """A default sender for `email.send` (read from the environment, once), dead jobs, and
    afterwards the app's client closed and the prefix's keys deleted."""
    previous = os.environ.get("CONVEYOR_SMTP_FROM")
    os.environ["CONVEYOR_SMTP_FROM"] = SENDER
    get_settings.cache_clear()
    assert get_settings().smtp_from == SENDER
    asyncio.run(_seed_dead(5))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CONVEYOR_SMTP_FROM", None)
        else:
            os.environ["CONVEYOR_SMTP_FROM"] = previous
        get_settings.cache_clear()
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()  # closes the app's client on the loop that opened it
        delete_prefix_sync(PREFIX)


@pytest.fixture(autouse=True)
def _keep_sender() -> None:
    """The conftest clears `CONVEYOR_*` for every test; the cached settings keep the sender."""
    assert get_settings().smtp_from == SENDER


@schema.parametrize()
@SETTINGS
def test_openapi_contract(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()  # every check: none is excluded


# `waitJob` is a long poll: how long it takes, and what a chain of calls after it finds,
# depends on the clock, which the stateful phase's replays cannot tolerate (hypothesis'
# FlakyStrategyDefinition); the contract phase above fuzzes it.
_Stateful = schema.exclude(operation_id="waitJob").as_state_machine()
_Stateful.TestCase.settings = settings(
    SETTINGS, max_examples=max(5, MAX_EXAMPLES // 3), stateful_step_count=8)


@pytest.mark.usefixtures("_server_as_in_production")
class TestStateful(_Stateful.TestCase):  # type: ignore[misc, name-defined]
    """Chains of calls along the document's links, every check on every step."""
