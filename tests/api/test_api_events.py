"""`GET /v1/events` (issue 17): Server-Sent Events from a real `conveyor api` process, read
with httpx-sse: queue / type / job filters, several queues, the API keys, resuming with
`Last-Event-ID` (no gap, no repeat), `event: gap` once the cursor left the bounded log, and
a consumer that keeps its history whole while the API is SIGKILLed and restarted 5 times.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import SSEError, aconnect_sse

from conveyor.brokers.base import LOG_START, AckItem
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.settings import Settings
from tests.api.api_support import wait_ready
from tests.support.env import REDIS_URL
from tests.support.processes import free_port

SCRIPT = str(Path(sys.executable).parent / "conveyor")
KEY = "events-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Api:
    """`conveyor api` on a fixed port; `kill()` is SIGKILL, `start()` starts it again."""

    def __init__(self, prefix: str, tmp: Path) -> None:
        self.prefix, self.tmp = prefix, tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env.update(CONVEYOR_API_KEYS=KEY, CONVEYOR_LOG_FORMAT="text")
        self.starts += 1
        log = self.tmp / f"api-{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [SCRIPT, "--broker-url", REDIS_URL, "--key-prefix", self.prefix, "api",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.proc, self.base, log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def api_proc(prefix: str, tmp_path: Path) -> Iterator[Api]:
    api = Api(prefix, tmp_path)
    api.start()
    try:
        yield api
    finally:
        api.kill()


@asynccontextmanager
async def producer(prefix: str, **settings: Any) -> AsyncIterator[AsyncConveyor]:
    client = AsyncConveyor.from_url(
        REDIS_URL, settings=Settings(broker_url=REDIS_URL, key_prefix=prefix, **settings),
        validate_types=False)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


async def collect(base: str, params: dict[str, Any], n: int, *, last_id: str | None = None,
                  timeout_s: float = 15) -> list[tuple[str, str, Any]]:
    """The first `n` events (event name, id, data) of a stream."""
    headers = dict(AUTH)
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    out: list[tuple[str, str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=timeout_s) as http,
        aconnect_sse(http, "GET", "/v1/events", params=params, headers=headers) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            out.append((sse.event, sse.id, json.loads(sse.data)))
            if len(out) == n:
                break
    return out


async def test_stream_filters_resumes_and_needs_the_key(api_proc: Api, prefix: str) -> None:
    async with httpx.AsyncClient(base_url=api_proc.base, timeout=10) as http:
        assert (await http.get("/v1/events", params={"queue": "a"})).status_code == 401
        bad = await http.get("/v1/events", params={"queue": "no spaces"}, headers=AUTH)
        assert bad.status_code == 422
    async with producer(prefix) as client:
        # the events of a and b (c is not followed): in log order per queue
        reader = asyncio.create_task(collect(api_proc.base, {"queue": ["a", "b"]}, 4))
        await asyncio.sleep(0.5)
        ja = await client.enqueue("t.one", 1, queue="a")
        await client.enqueue("t.one", 1, queue="c")
        jb = await client.enqueue("t.two", 2, queue="b")
        jc = await client.cancel((await client.enqueue("t.one", 3, queue="a")).id)
        got = await asyncio.wait_for(reader, 20)
        assert [e for e, _, _ in got] == ["job"] * 4
        pairs = [(d["job_id"], d["event"]) for _, _, d in got]
        assert sorted(pairs) == sorted([(ja.id, "enqueued"), (jb.id, "enqueued"),
                                        (jc.id, "enqueued"), (jc.id, "cancelled")])
        assert pairs.index((ja.id, "enqueued")) < pairs.index((jc.id, "enqueued")) < \
            pairs.index((jc.id, "cancelled"))
        assert set(got[0][2]) == {"id", "job_id", "queue", "type", "event", "state",
                                  "attempt", "at", "error_code"}
        # resume after the first event: the rest, nothing repeated
        rest = await collect(api_proc.base, {"queue": ["a", "b"]}, 3, last_id=got[0][1])
        assert sorted((d["job_id"], d["event"]) for _, _, d in rest) == sorted(pairs[1:])
        # filters: a job type, one job
        only = await collect(api_proc.base, {"queue": ["a", "b"], "type": "t.two"}, 1,
                             last_id="a:0,b:0")
        assert [d["job_id"] for _, _, d in only] == [jb.id]
        one = await collect(api_proc.base, {"job_id": jc.id}, 2, last_id="a:0")
        assert [d["event"] for _, _, d in one] == ["enqueued", "cancelled"]
        # a cursor the log cannot read: a gap first, then live events
        reader = asyncio.create_task(collect(api_proc.base, {"queue": "a"}, 2,
                                             last_id="a:not-a-cursor"))
        await asyncio.sleep(0.5)
        late = await client.enqueue("t.one", 4, queue="a")
        got = await asyncio.wait_for(reader, 20)
        assert got[0][0] == "gap" and got[0][2] == {"queue": "a", "cursor": None}
        assert got[1][2]["job_id"] == late.id


async def test_gap_when_the_cursor_fell_out_of_the_log(api_proc: Api, prefix: str) -> None:
    async with producer(prefix, events_maxlen=10) as client:
        first = await collect_after_enqueue(api_proc, client)
        await client.enqueue_many([JobRequest(type="t", payload=i, queue="g")
                                   for i in range(400)])
        got = await collect(api_proc.base, {"queue": "g"}, 2, last_id=first)
        assert got[0][0] == "gap" and got[0][2]["queue"] == "g"
        assert got[1][0] == "job"


async def collect_after_enqueue(api: Api, client: AsyncConveyor) -> str:
    reader = asyncio.create_task(collect(api.base, {"queue": "g"}, 1))
    await asyncio.sleep(0.5)
    await client.enqueue("t", 0, queue="g")
    [(_, event_id, _)] = await asyncio.wait_for(reader, 20)
    return event_id


async def test_a_consumer_keeps_every_history_across_api_kills(
    api_proc: Api, prefix: str,
) -> None:
    """3 queues, jobs enqueued and finished all along, the API SIGKILLed and restarted 5
    times; the consumer reconnects with `Last-Event-ID`. What it received must equal each
    job's whole history in the log: no gap, no repeat, no reordering."""
    queues = ["k1", "k2", "k3"]
    received: list[dict[str, Any]] = []
    last: dict[str, str | None] = {"id": None}
    gaps: list[Any] = []
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            headers = dict(AUTH)
            if last["id"]:
                headers["Last-Event-ID"] = last["id"]
            try:
                async with (
                    httpx.AsyncClient(base_url=api_proc.base, timeout=30) as http,
                    aconnect_sse(http, "GET", "/v1/events", params={"queue": queues},
                                 headers=headers) as source,
                ):
                    async for sse in source.aiter_sse():
                        if sse.event == "gap":
                            gaps.append(sse.data)
                        else:
                            received.append(json.loads(sse.data))
                        last["id"] = sse.id
            except (httpx.TransportError, SSEError):
                await asyncio.sleep(0.05)

    async with producer(prefix) as client:
        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        jobs: list[str] = []
        for round_ in range(6):
            for queue in queues:
                made = await client.enqueue_many(
                    [JobRequest(type="t", payload=i, queue=queue) for i in range(20)])
                jobs += [m.job_id for m in made]
                batch = await client.broker.fetch(queue, 10, "w", 60_000)
                await client.broker.ack([AckItem(d.job_id, d.token) for d in batch.deliveries])
            await asyncio.sleep(0.2)
            if round_ < 5:
                await asyncio.to_thread(api_proc.kill)
                await asyncio.sleep(0.2)
                await asyncio.to_thread(api_proc.start)
        # everything written: the consumer catches up
        log: dict[str, list[str]] = defaultdict(list)
        total = 0
        for queue in queues:
            cursor = LOG_START
            while True:
                page = await client.broker.read_events(queue, cursor, 1000)
                assert not page.gap
                for ev in page.events:
                    log[ev.job_id].append(f"{ev.id}/{ev.event}")
                    total += 1
                if not page.events:
                    break
                cursor = page.cursor
        for _ in range(200):
            if len(received) >= total:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.to_thread(api_proc.kill)
        await asyncio.wait_for(consumer, 30)
    assert api_proc.starts == 6 and not gaps
    seen: dict[str, list[str]] = defaultdict(list)
    for got in received:
        seen[got["job_id"]].append(f"{got['id']}/{got['event']}")
    assert len(received) == total
    assert seen == log and set(seen) == set(jobs)



async def test_a_stream_over_every_queue_follows_queues_that_appear_later(
        api_proc: Api, prefix: str) -> None:
    """No queue named on an install with no queue yet: the stream waits (it used to fail at
    once) and follows a queue that appears while it runs, from that queue's first event."""
    reader = asyncio.create_task(collect(api_proc.base, {}, 2, timeout_s=20))
    await asyncio.sleep(1.0)
    assert not reader.done()  # open, waiting: not failed
    async with producer(prefix) as client:
        first = await client.enqueue("t.one", 1, queue="late")
        second = await client.enqueue("t.one", 2, queue="later")
        got = await asyncio.wait_for(reader, 20)
    assert sorted((d["job_id"], d["event"]) for _, _, d in got) == sorted(
        [(first.id, "enqueued"), (second.id, "enqueued")])
