"""End to end (issue 18): two real `conveyor worker --metrics-port 0` processes on one host both
serve their metrics, each on a port of its own that the worker registry shows, bound to
loopback only; their job counters add up to the broker's per-minute series, which say
exactly what happened."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState
from tests.e2e.e2e_support import QUEUE, StartWorker
from tests.support.waits import wait_for_state, wait_until

pytestmark = pytest.mark.e2e

JOBS = 40
RETRIED = 6
DEAD = 4
#: Linux shows listening sockets here; the loopback check needs it
HAS_PROC_NET = Path("/proc/net/tcp").exists()


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as the kernel shows them) with a socket listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def outcome(text: str, name: str) -> float:
    """The sum of one outcome of `conveyor_worker_jobs_total` in a scrape."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "conveyor_worker_jobs":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels.get("outcome") == name:
                    total += s.value
    return total


@pytest.mark.skipif(not HAS_PROC_NET, reason="needs /proc/net/tcp (Linux)")
async def test_two_workers_on_port_zero_both_serve_on_loopback(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    workers = [await start_worker(concurrency=2, args=["--metrics-port", "0"])
               for _ in range(2)]
    urls = [w.info.metrics_url if w.info else None for w in workers]
    assert all(isinstance(u, str) and u.startswith("http://127.0.0.1:") for u in urls), urls
    ports = [httpx.URL(str(u)).port for u in urls]
    assert ports[0] != ports[1]
    for port in ports:
        assert port is not None
        # nothing but 127.0.0.1 (0100007F) listens: not 0.0.0.0, not ::
        assert listening_addresses(port) == ["0100007F"]

    requests = ([JobRequest("fake", {"result": i}, queue=QUEUE) for i in range(JOBS)]
                + [JobRequest("fake", {"fail_times": 1}, queue=QUEUE) for _ in range(RETRIED)]
                + [JobRequest("fake", {"permanent": True}, queue=QUEUE) for _ in range(DEAD)])
    results = await client.enqueue_many(requests)
    for r in results:
        await wait_for_state(client, r.job_id, [JobState.SUCCEEDED, JobState.DEAD],
                             timeout_s=30)
    want = {"succeeded": JOBS + RETRIED, "failed": RETRIED, "dead": DEAD}

    # the broker's series, written by the transitions, say exactly what happened ...
    points = await client.series(QUEUE, 10)
    assert {k: sum(getattr(p, k) for p in points) for k in want} == want

    # ... and the two workers' counters add up to them once every answer arrived (an outcome
    # sent but not yet answered at scrape time is not counted yet: hence the wait)
    async with httpx.AsyncClient() as http:
        async def counted() -> dict[str, float] | None:
            texts = [(await http.get(str(u))).text for u in urls]
            got = {k: sum(outcome(t, k) for t in texts) for k in want}
            return got if got == want else None

        assert await wait_until(counted, "the workers' counters to add up") == want


async def test_metrics_are_off_by_default(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    w = await start_worker()
    assert w.info is not None and w.info.metrics_url is None
