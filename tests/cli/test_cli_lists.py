"""`conveyor jobs list`, `dlq list` over every queue, `queue pause` of an unknown queue,
`job show --traceback` and errors as JSON with --json."""

from __future__ import annotations

import json

from conveyor.brokers.base import Broker, FailItem
from conveyor.client import AsyncConveyor, JobRequest
from tests.cli.cli_support import Cli


def test_dlq_list_shows_every_queue_unless_one_is_given(run_cli: Cli) -> None:
    mail = run_cli.make_dead(2, queue="mail")
    reports = run_cli.make_dead(3, queue="reports")
    table = run_cli.ok("dlq", "list").stdout
    for job_id in mail + reports:
        assert job_id in table
    everything = run_cli.json("dlq", "list")["items"]
    assert {j["id"] for j in everything} == set(mail + reports)
    only_mail = run_cli.json("dlq", "list", "--queue", "mail")["items"]
    assert {j["id"] for j in only_mail} == set(mail)
    assert "no dead jobs in queue other" in run_cli.ok("dlq", "list", "-q", "other").stdout


def test_dlq_list_pages_with_the_cursor(run_cli: Cli) -> None:
    dead = set(run_cli.make_dead(2, queue="a") + run_cli.make_dead(1, queue="b"))
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        args = ["dlq", "list", "--limit", "1", *(["--cursor", cursor] if cursor else [])]
        doc = run_cli.json(*args)
        seen += [j["id"] for j in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(dead)  # each once, across queues


def test_filtered_pages_skip_nothing(run_cli: Cli) -> None:
    dead = run_cli.make_dead(3, queue="a")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        doc = run_cli.json("dlq", "list", "--error-code", "handler_error", "--limit", "1",
                           *(["--cursor", cursor] if cursor else []))
        assert len(doc["items"]) <= 1
        seen += [j["id"] for j in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(dead)


def test_dlq_list_filters_across_queues(run_cli: Cli) -> None:
    run_cli.make_dead(2, queue="a")
    doc = run_cli.json("dlq", "list", "--error-code", "handler_error", "--limit", "5")
    assert len(doc["items"]) == 2
    assert run_cli.json("dlq", "list", "--error-code", "timeout")["items"] == []


def _enqueue(run_cli: Cli, requests: list[JobRequest]) -> list[str]:
    async def action(broker: Broker) -> list[str]:
        return [r.job_id for r in await AsyncConveyor(broker).enqueue_many(requests)]

    return run_cli.broker(action)


def test_jobs_list_filters_and_pages(run_cli: Cli) -> None:
    dead = run_cli.make_dead(1, queue="a")
    a = _enqueue(run_cli, [JobRequest("fake", {}, "a")] * 3)
    b = _enqueue(run_cli, [JobRequest("fake", {"duration_ms": 1}, "b", delay=60)])
    listed = run_cli.json("jobs", "list")
    assert {j["id"] for j in listed["items"]} == set(a + b + dead)
    assert listed["next_cursor"] is None
    assert [j["id"] for j in run_cli.json("jobs", "list", "-q", "b")["items"]] == b
    assert [j["id"] for j in run_cli.json("jobs", "list", "--state", "dead")["items"]] == dead
    assert run_cli.json("jobs", "list", "--state", "scheduled")["items"][0]["id"] == b[0]
    assert run_cli.json("jobs", "list", "--type", "nope")["items"] == []

    first = run_cli.json("jobs", "list", "-q", "a", "--state", "queued", "--limit", "2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = run_cli.json("jobs", "list", "-q", "a", "--state", "queued",
                        "--cursor", first["next_cursor"])
    assert sorted(j["id"] for j in first["items"] + rest["items"]) == sorted(a)
    assert rest["next_cursor"] is None


def test_jobs_list_table_and_the_next_cursor_hint(run_cli: Cli) -> None:
    ids = _enqueue(run_cli, [JobRequest("fake", {}, "t")] * 2)
    res = run_cli.ok("jobs", "list", "--limit", "1")
    assert ids[1] in res.stdout and "queued" in res.stdout  # newest first
    assert "note: more jobs may follow: add --cursor " in res.stderr
    assert run_cli("jobs", "list", "--state", "bogus").exit_code == 2
    assert "no jobs in queue zz match" in run_cli.ok("jobs", "list", "-q", "zz").stdout


def test_pausing_an_unknown_queue_warns(run_cli: Cli) -> None:
    _enqueue(run_cli, [JobRequest("fake", {}, "emails")])
    res = run_cli.ok("queue", "pause", "emails")
    assert "warning" not in res.stderr
    res = run_cli.ok("queue", "pause", "email")
    assert res.stdout == "paused queue email\n"
    assert res.stderr.startswith("warning: queue email is unknown: no job was ever enqueued")
    assert "did you mean emails?" in res.stderr
    res = run_cli.ok("--json", "queue", "pause", "zzz")
    assert json.loads(res.stdout) == {"queue": "zzz", "paused": True}
    warning = json.loads(res.stderr.splitlines()[0])["warning"]
    assert warning["queue"] == "zzz" and warning["similar"] == []


def test_job_show_prints_tracebacks_on_demand(run_cli: Cli) -> None:
    async def action(broker: Broker) -> str:
        [res] = await AsyncConveyor(broker).enqueue_many([JobRequest("fake", {})])
        [d] = (await broker.fetch("default", 1, "cvt-worker", 30_000)).deliveries
        tb = 'Traceback (most recent call last):\n  File "h.py", line 3\nValueError: no\n'
        await broker.fail([FailItem(d.job_id, d.token, "handler_error", "no", tb, None)])
        return res.job_id

    job_id = run_cli.broker(action)
    plain = run_cli.ok("job", "show", job_id).stdout
    assert "ValueError: no" not in plain
    assert "(1 traceback(s): add --traceback to show them)" in plain
    full = run_cli.ok("job", "show", job_id, "--traceback").stdout
    assert "traceback of attempt 1 (" in full
    assert 'File "h.py", line 3\nValueError: no' in full


def test_json_errors_are_json(run_cli: Cli) -> None:
    missing = run_cli("--json", "job", "show", "default:00000000000000000000000000000000")
    assert missing.exit_code == 1 and missing.stdout == ""
    error = json.loads(missing.stderr.splitlines()[0])["error"]
    assert error["code"] == "job_not_found"
    usage = run_cli("enqueue", "fake", "--delay", "soon", "--json")
    assert usage.exit_code == 2
    assert json.loads(usage.stderr) == {"error": {
        "code": "usage_error", "details": {"param": "delay"},
        "message": "Invalid value for '--delay': invalid duration 'soon': use e.g. 250ms, 5s,"
                   " 1.5m, 2h, 1d"}}
    invalid = run_cli("--json", "enqueue", "fake", "--payload", '{"duration_ms": "x"}')
    assert invalid.exit_code == 2
    doc = json.loads(invalid.stderr.splitlines()[0])["error"]
    assert doc["code"] == "validation_error"
    assert doc["details"][0]["loc"][-1] == "duration_ms"
    unknown = run_cli("--json", "nope")
    assert unknown.exit_code == 2 and json.loads(unknown.stderr)["error"]["code"] == "usage_error"
