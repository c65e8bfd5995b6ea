"""`conveyor enqueue` and `conveyor job show|retry|cancel` against the real Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from conveyor.brokers.base import Broker, LeaseRef
from conveyor.jobs import Delivery
from tests.cli.cli_support import Cli


def test_enqueue_then_show(run_cli: Cli) -> None:
    out = run_cli.ok("enqueue", "fake", "--payload", '{"duration_ms": 7}').stdout
    job_id, state = out.split()
    assert job_id.startswith("default:") and state == "queued"

    shown = run_cli.ok("job", "show", job_id).stdout
    assert f"id:              {job_id}" in shown
    assert "state:           queued" in shown
    assert '"duration_ms":7' in shown

    doc = run_cli.json("job", "show", job_id)
    assert doc["id"] == job_id and doc["state"] == "queued" and doc["type"] == "fake"
    assert doc["payload"]["duration_ms"] == 7


def test_enqueue_options_reach_the_job(run_cli: Cli) -> None:
    doc = run_cli.json(
        "enqueue", "fake", "--queue", "mail", "--priority", "7", "--max-attempts", "2",
        "--timeout", "1.5m", "--delay", "1h", "--idempotency-key", "k-1",
    )
    assert doc["id"].startswith("mail:")
    assert (doc["state"], doc["priority"], doc["max_attempts"]) == ("scheduled", 7, 2)
    assert doc["timeout_s"] == 90.0 and doc["idempotency_key"] == "k-1"
    stored = run_cli.broker(lambda b: b.get(doc["id"]))
    assert stored.state == "scheduled" and stored.run_at is not None
    assert stored.run_at - stored.created_at >= timedelta(minutes=59)

    again = run_cli.ok(
        "enqueue", "fake", "--queue", "mail", "--priority", "7", "--max-attempts", "2",
        "--timeout", "1.5m", "--delay", "1h", "--idempotency-key", "k-1",
    )
    assert again.stdout.split() == [doc["id"], "scheduled"]
    assert "note: idempotency key 'k-1' already names this job" in again.stderr

    conflict = run_cli("enqueue", "fake", "--queue", "mail", "--idempotency-key", "k-1")
    assert conflict.exit_code == 1
    assert conflict.stderr.startswith("error: idempotency_conflict: ")


def test_enqueue_json_flag_on_the_command(run_cli: Cli) -> None:
    doc = json.loads(run_cli.ok("enqueue", "fake", "--json").stdout)
    assert doc["state"] == "queued"


def test_run_at_with_zone(run_cli: Cli) -> None:
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    doc = run_cli.json("enqueue", "fake", "--run-at", when.isoformat().replace("+00:00", "Z"))
    assert doc["state"] == "scheduled"
    assert datetime.fromisoformat(doc["run_at"]) == when


def test_run_at_without_zone_is_usage_error(run_cli: Cli) -> None:
    result = run_cli("enqueue", "fake", "--run-at", "2030-01-01T00:00:00")
    assert result.exit_code == 2
    assert "time zone" in result.stderr


def test_invalid_json_payload_exits_2(run_cli: Cli) -> None:
    result = run_cli("enqueue", "fake", "--payload", "{not json")
    assert result.exit_code == 2
    assert "invalid JSON" in result.stderr
    assert run_cli.json("stats") == {}


def test_unknown_type_exits_2(run_cli: Cli) -> None:
    result = run_cli("enqueue", "no.such.type", "--payload", "{}")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown_job_type: ")


def test_unknown_type_is_reported_even_with_the_broker_down(run_cli: Cli) -> None:
    result = run_cli("--broker-url", "redis://127.0.0.1:1/0", "enqueue", "no.such.type")
    assert result.exit_code == 2
    assert "unknown_job_type" in result.stderr


def test_invalid_payload_exits_2_with_details(run_cli: Cli) -> None:
    result = run_cli("enqueue", "fake", "--payload", '{"duration_ms": "slow"}')
    assert result.exit_code == 2
    assert result.stderr.startswith("error: validation_error: invalid payload")
    assert "duration_ms:" in result.stderr


def test_bad_option_values_exit_2(run_cli: Cli) -> None:
    for args in (
        ["--queue", "bad queue"], ["--delay", "5 parsecs"], ["--timeout", "-1"],
        ["--priority", "5000"], ["--max-attempts", "0"], ["--max-attempts", "101"],
        ["--delay", "1s", "--run-at", "2030-01-01T00:00:00Z"],
    ):
        result = run_cli("enqueue", "fake", *args)
        assert result.exit_code == 2, (args, result.output)
    assert run_cli.json("stats") == {}


def test_show_missing_job_exits_1(run_cli: Cli) -> None:
    missing = "default:" + "0" * 32
    result = run_cli("job", "show", missing)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: job_not_found: job {missing} not found")


def test_show_bad_id_exits_2(run_cli: Cli) -> None:
    for bad in ("nope", "default:xyz", "bad queue:" + "0" * 32):
        result = run_cli("job", "show", bad)
        assert result.exit_code == 2, bad
        assert "is not a job id" in result.stderr


def test_cancel_and_retry(run_cli: Cli) -> None:
    job_id = run_cli.ok("enqueue", "fake", "--delay", "1h").stdout.split()[0]
    assert run_cli.ok("job", "cancel", job_id).stdout.split() == [job_id, "cancelled"]

    again = run_cli("job", "cancel", job_id)
    assert again.exit_code == 1
    assert again.stderr.startswith("error: invalid_state: ")

    doc = run_cli.json("job", "retry", job_id)
    assert doc["state"] == "queued"
    assert doc["history"][-1]["outcome"] == "retried"


def test_cancel_of_a_running_job_asks_its_worker(run_cli: Cli) -> None:
    job_id = run_cli.ok("enqueue", "fake").stdout.split()[0]

    async def lease(broker: Broker) -> Delivery:
        (d,) = (await broker.fetch("default", 1, "w-cli", 60_000)).deliveries
        return d

    d = run_cli.broker(lease)
    assert run_cli.ok("job", "cancel", job_id).stdout.split() == [
        job_id, "running", "cancel-requested"]
    doc = run_cli.json("job", "cancel", job_id)  # again: harmless
    assert (doc["state"], doc["cancel_requested"], doc["cancel_requested_by"]) == (
        "running", True, "cli")
    shown = run_cli.ok("job", "show", job_id).stdout
    assert "cancel:          requested by cli" in shown
    assert "worker:          w-cli" in shown

    async def stop(broker: Broker) -> list[bool]:
        return await broker.cancel_running([LeaseRef(d.job_id, d.token)])

    assert run_cli.broker(stop) == [True]
    done = run_cli.json("job", "show", job_id)
    assert done["state"] == "cancelled"
    assert "cli" in done["history"][-1]["message"]


def test_retry_of_a_queued_job_is_invalid_state(run_cli: Cli) -> None:
    job_id = run_cli.ok("enqueue", "fake").stdout.split()[0]
    result = run_cli("job", "retry", job_id)
    assert result.exit_code == 1
    assert "invalid_state" in result.stderr


def test_show_a_dead_job_lists_its_history(run_cli: Cli) -> None:
    (job_id,) = run_cli.make_dead(1)
    shown = run_cli.ok("job", "show", job_id).stdout
    assert "state:           dead" in shown
    assert "last error:      handler_error: boom" in shown
    assert "history" in shown and "cvt-worker" in shown


def test_broker_unavailable_exits_1(run_cli: Cli) -> None:
    result = run_cli("--broker-url", "redis://127.0.0.1:1/0", "job", "show", "default:" + "0" * 32)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: broker_unavailable: ")

