"""`conveyor dlq list|redrive|purge`; dead jobs are made through the broker (fetch + fail
without retry), the one way a job reaches DEAD without a worker process.
"""

from __future__ import annotations

import json

from conveyor.jobs import JobState
from tests.cli.cli_support import Cli


def _states(run_cli: Cli, ids: list[str]) -> list[str]:
    return [run_cli.json("job", "show", job_id)["state"] for job_id in ids]


def test_list_shows_dead_jobs(run_cli: Cli) -> None:
    dead = run_cli.make_dead(3)
    table = run_cli.ok("dlq", "list").stdout
    for job_id in dead:
        assert job_id in table
    assert "handler_error: boom" in table

    doc = run_cli.json("dlq", "list", "--limit", "2")
    assert len(doc["items"]) == 2 and doc["next_cursor"] is not None
    assert {j["state"] for j in doc["items"]} == {"dead"}


def test_list_of_an_empty_dlq(run_cli: Cli) -> None:
    assert "no dead jobs in queue other" in run_cli.ok("dlq", "list", "-q", "other").stdout
    assert run_cli.json("dlq", "list")["items"] == []


def test_redrive_by_id(run_cli: Cli) -> None:
    first, second = run_cli.make_dead(2)
    out = run_cli.ok("dlq", "redrive", first).stdout
    assert first in out and "redriven 1 job(s)" in out
    assert _states(run_cli, [first, second]) == ["queued", "dead"]


def test_redrive_all_and_limit(run_cli: Cli) -> None:
    dead = run_cli.make_dead(5, queue="mail")
    doc = run_cli.json("dlq", "redrive", "--all", "--queue", "mail", "--limit", "2")
    assert len(doc["redriven"]) == 2 and doc["skipped"] == []
    doc = run_cli.json("dlq", "redrive", "--all", "--queue", "mail")
    assert len(doc["redriven"]) == 3
    assert sorted(_states(run_cli, dead)) == ["queued"] * 5
    assert run_cli.json("stats", "-q", "mail")["mail"][JobState.DEAD] == 0


def test_redrive_of_a_job_not_in_the_dlq_exits_1(run_cli: Cli) -> None:
    (dead,) = run_cli.make_dead(1)
    live = run_cli.ok("enqueue", "fake").stdout.split()[0]
    result = run_cli("--json", "dlq", "redrive", dead, live)
    assert result.exit_code == 1
    assert '"skipped": [\n    "' + live in result.stdout
    assert _states(run_cli, [dead, live]) == ["queued", "queued"]


def test_redrive_needs_ids_or_all(run_cli: Cli) -> None:
    (dead,) = run_cli.make_dead(1)
    assert run_cli("dlq", "redrive").exit_code == 2
    assert run_cli("dlq", "redrive", dead, "--all").exit_code == 2
    wrong_queue = run_cli("dlq", "redrive", dead, "--queue", "other")
    assert wrong_queue.exit_code == 2 and "not in queue other" in wrong_queue.stderr
    assert run_cli("dlq", "redrive", "not-an-id").exit_code == 2
    assert _states(run_cli, [dead]) == ["dead"]


def test_purge_by_id(run_cli: Cli) -> None:
    first, second = run_cli.make_dead(2)
    out = run_cli.ok("dlq", "purge", first).stdout
    assert "purged 1 job(s)" in out
    gone = run_cli("job", "show", first)
    assert gone.exit_code == 1 and "job_not_found" in gone.stderr
    assert _states(run_cli, [second]) == ["dead"]


def test_purge_all_asks_first(run_cli: Cli) -> None:
    dead = run_cli.make_dead(3)
    refused = run_cli("dlq", "purge", "--all", input="n\n")
    assert refused.exit_code == 1
    assert "Delete every dead job of queue default?" in refused.stderr
    assert _states(run_cli, dead) == ["dead"] * 3

    confirmed = run_cli("dlq", "purge", "--all", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "purged 3 job(s)" in confirmed.stdout
    assert run_cli.json("stats")["default"][JobState.DEAD] == 0


def test_purge_all_with_yes_does_not_ask(run_cli: Cli) -> None:
    run_cli.make_dead(2, queue="mail")
    doc = run_cli.json("dlq", "purge", "--all", "--queue", "mail", "--yes")
    assert len(doc["purged"]) == 2
    assert run_cli.json("dlq", "list", "-q", "mail")["items"] == []


def test_ids_not_in_the_dlq_are_skipped_and_exit_1(run_cli: Cli) -> None:
    (dead,) = run_cli.make_dead(1)
    missing = "default:" + "0" * 32
    result = run_cli("dlq", "redrive", dead, missing)
    assert result.exit_code == 1
    assert dead in result.stdout and "redriven 1 job(s)" in result.stdout
    assert f"not in the DLQ (skipped): {missing}" in result.stderr
    assert _states(run_cli, [dead]) == ["queued"]


def test_purge_leaves_live_jobs_alone(run_cli: Cli) -> None:
    live = run_cli.ok("enqueue", "fake").stdout.split()[0]
    result = run_cli("--json", "dlq", "purge", live)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"purged": [], "skipped": [live], "count": 0}
    assert _states(run_cli, [live]) == ["queued"]
