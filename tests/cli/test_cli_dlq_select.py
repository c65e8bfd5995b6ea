"""`conveyor dlq` selections: `--type`, `--error-code`, `--died-before/--died-after`,
`--dry-run`, `--rate`, `--to`, and the filters of `dlq list`."""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime

from conveyor.brokers.base import Broker, FailItem
from conveyor.client import AsyncConveyor
from conveyor.dlq.pacing import TokenBucket
from conveyor.jobs import JobState
from tests.cli.cli_support import Cli


def _dead(run_cli: Cli, n: int, *, type: str = "t", code: str = "e",
          queue: str = "default") -> list[str]:
    """n dead jobs of any type and error code (fetched and failed through the broker)."""

    async def action(broker: Broker) -> list[str]:
        client = AsyncConveyor(broker, validate_types=False)
        ids = [(await client.enqueue(type, i, queue=queue)).id for i in range(n)]
        batch = await broker.fetch(queue, n, "w", 30_000)
        items = [FailItem(d.job_id, d.token, code, "boom") for d in batch.deliveries]
        assert await broker.fail(items) == [JobState.DEAD] * n
        return ids

    return run_cli.broker(action)


def _states(run_cli: Cli, ids: list[str]) -> list[str]:
    return [run_cli.json("job", "show", i)["state"] for i in ids]


def _died(run_cli: Cli, job_id: str) -> str:
    return str(run_cli.json("job", "show", job_id)["finished_at"])


def _after_death_ms(run_cli: Cli, job_id: str) -> None:
    """Poll the broker clock until it is past the job's death millisecond."""
    died = datetime.fromisoformat(_died(run_cli, job_id)).timestamp() * 1000
    deadline = time.monotonic() + 10
    while run_cli.broker(lambda b: b.now_ms()) <= died + 1:
        assert time.monotonic() < deadline, "broker clock did not advance"


def test_redrive_by_type_and_error_code_across_queues(run_cli: Cli) -> None:
    a_x = _dead(run_cli, 2, type="a", code="x") + _dead(run_cli, 1, type="a", code="x",
                                                        queue="mail")
    a_y = _dead(run_cli, 1, type="a", code="y")
    doc = run_cli.json("dlq", "redrive", "--type", "a", "--error-code", "x")
    assert sorted(doc["redriven"]) == sorted(a_x) and doc["count"] == 3
    assert _states(run_cli, a_y) == ["dead"]
    job = run_cli.json("job", "show", a_x[0])
    assert job["history"][-1]["outcome"] == "redriven"
    assert job["history"][-1]["worker"] == f"cli:{getpass.getuser()}"


def test_redrive_by_queue_with_a_filter(run_cli: Cli) -> None:
    mine = _dead(run_cli, 2, type="a", queue="mail")
    theirs = _dead(run_cli, 2, type="a")
    doc = run_cli.json("dlq", "redrive", "--queue", "mail", "--type", "a")
    assert sorted(doc["redriven"]) == sorted(mine)
    assert _states(run_cli, theirs) == ["dead", "dead"]


def test_redrive_by_death_time(run_cli: Cli) -> None:
    (early,) = _dead(run_cli, 1)
    _after_death_ms(run_cli, early)  # the next job dies in a later millisecond
    (late,) = _dead(run_cli, 1)
    cut = _died(run_cli, late)
    out = run_cli.ok("dlq", "redrive", "--died-before", cut, "--dry-run").stdout
    assert early in out and late not in out
    assert "would redrive 1 job(s) (dry run: nothing changed)" in out
    doc = run_cli.json("dlq", "redrive", "--died-after", cut)
    assert doc["redriven"] == [late]
    assert _states(run_cli, [early, late]) == ["dead", "queued"]


def test_dry_run_changes_nothing(run_cli: Cli) -> None:
    ids = _dead(run_cli, 3, type="a")
    doc = run_cli.json("dlq", "redrive", "--all", "--dry-run", "--to", "elsewhere")
    assert sorted(doc["would_redrive"]) == sorted(ids) and doc["count"] == 3
    doc = run_cli.json("dlq", "purge", "--type", "a", "--dry-run")  # no question asked
    assert sorted(doc["would_purge"]) == sorted(ids)
    assert _states(run_cli, ids) == ["dead"] * 3
    assert "elsewhere" not in run_cli.json("stats")


def test_rate_paces_the_redrive(run_cli: Cli) -> None:
    n, rate = 20, 40.0
    ids = _dead(run_cli, n)
    started = time.monotonic()
    doc = run_cli.json("dlq", "redrive", "--all", "--rate", str(rate))
    elapsed = time.monotonic() - started
    assert doc["count"] == n and _states(run_cli, ids) == ["queued"] * n
    assert elapsed >= (n - TokenBucket(rate).burst) / rate


def test_redrive_into_another_queue(run_cli: Cli) -> None:
    (job_id,) = _dead(run_cli, 1, type="a")
    out = run_cli.ok("dlq", "redrive", job_id, "--to", "retry").stdout
    assert f"{job_id} -> retry:" in out and "redriven 1 job(s)" in out
    new_id = out.split(" -> ")[1].split()[0]
    assert run_cli.json("job", "show", new_id)["state"] == "queued"
    gone = run_cli("job", "show", job_id)
    assert gone.exit_code == 1 and "job_not_found" in gone.stderr


def test_purge_a_selection_asks_first(run_cli: Cli) -> None:
    a = _dead(run_cli, 2, type="a")
    b = _dead(run_cli, 1, type="b")
    refused = run_cli("dlq", "purge", "--type", "a", input="n\n")
    assert refused.exit_code == 1 and "Delete the selected dead jobs of every queue?" in (
        refused.stderr
    )
    assert _states(run_cli, a) == ["dead", "dead"]
    doc = run_cli.json("dlq", "purge", "--type", "a", "--yes")
    assert sorted(doc["purged"]) == sorted(a)
    assert _states(run_cli, b) == ["dead"]


def test_bad_selections_are_usage_errors(run_cli: Cli) -> None:
    (dead,) = _dead(run_cli, 1)
    naive = datetime(2030, 1, 1).isoformat()
    for args in (
        ["dlq", "redrive", dead, "--type", "a"],
        ["dlq", "redrive", "--type", "bad type!"],
        ["dlq", "redrive", "--all", "--rate", "0"],
        ["dlq", "redrive", "--all", "--to", "bad/queue"],
        ["dlq", "redrive", "--died-before", naive],
        ["dlq", "redrive", "--died-after", "2030-01-02T00:00:00Z",
         "--died-before", "2030-01-01T00:00:00Z"],
        ["dlq", "purge", dead, "--error-code", "e"],
        ["dlq", "list", "--died-after", "yesterday"],
    ):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.output)
    assert _states(run_cli, [dead]) == ["dead"]


def test_list_filters(run_cli: Cli) -> None:
    a_x = _dead(run_cli, 2, type="a", code="x")
    b_y = _dead(run_cli, 1, type="b", code="y")
    assert {j["id"] for j in run_cli.json("dlq", "list", "--type", "a")["items"]} == set(a_x)
    assert [j["id"] for j in run_cli.json("dlq", "list", "--error-code", "y")["items"]] == b_y
    cut = _died(run_cli, b_y[0])
    after = run_cli.json("dlq", "list", "--died-after", cut)["items"]
    assert [j["id"] for j in after] == b_y
    future = datetime(2999, 1, 1, tzinfo=UTC).isoformat()
    assert len(run_cli.json("dlq", "list", "--died-before", future)["items"]) == 3
    assert "no dead jobs" in run_cli.ok("dlq", "list", "--type", "c").stdout
