"""`conveyor seed`, `stats`, `workers`, `queue pause|resume`, `worker` argument checks and the
handling of bad settings."""

from __future__ import annotations

from conveyor.brokers.base import Broker, WorkerInfo
from conveyor.cli.main import cli
from tests.cli.cli_support import Cli, clean_env


def test_seed_then_stats(run_cli: Cli) -> None:
    out = run_cli.ok("seed", "--count", "1000", "--batch", "300").stdout
    assert out.startswith("enqueued 1000 fake job(s) to default in ")
    assert "jobs/s" in out

    counts = run_cli.json("stats")
    assert counts["default"]["queued"] == 1000
    table = run_cli.ok("stats").stdout
    assert "default" in table and "1000" in table and "queued" in table


def test_seed_json_and_queue(run_cli: Cli) -> None:
    doc = run_cli.json("seed", "-n", "5", "-q", "bulk", "--payload", '{"duration_ms": 1}')
    assert doc["count"] == 5 and doc["queue"] == "bulk" and doc["jobs_per_s"] > 0
    assert run_cli.json("stats", "-q", "bulk") == {
        "bulk": {"scheduled": 0, "queued": 5, "running": 0, "succeeded": 0, "dead": 0,
                 "cancelled": 0},
    }


def test_seed_with_a_bad_type_or_payload_enqueues_nothing(run_cli: Cli) -> None:
    result = run_cli("seed", "-n", "10", "--type", "nope")
    assert result.exit_code == 2 and "unknown_job_type" in result.stderr
    result = run_cli("seed", "-n", "10", "--payload", '{"duration_ms": -1}')
    assert result.exit_code == 2 and "validation_error" in result.stderr
    assert run_cli("seed", "-n", "0").exit_code == 2
    assert run_cli.json("stats") == {}


def test_stats_of_named_queues_and_no_queues(run_cli: Cli) -> None:
    assert "no queues yet" in run_cli.ok("stats").stdout
    run_cli.ok("enqueue", "fake", "-q", "a")
    assert set(run_cli.json("stats", "-q", "a", "-q", "b")) == {"a", "b"}
    assert run_cli("stats", "-q", "bad queue").exit_code == 2


def test_workers_lists_registered_workers(run_cli: Cli) -> None:
    assert "no live workers" in run_cli.ok("workers").stdout
    info = WorkerInfo(
        id="cvt-host-1", host="host-1", pid=4242, queues=["default", "mail"], concurrency=8,
        jobs=["default:" + "0" * 32], started_at_ms=1,
    )

    async def register(broker: Broker) -> None:
        await broker.register_worker(info, ttl_s=60)

    run_cli.broker(register)
    table = run_cli.ok("workers").stdout
    assert "cvt-host-1" in table and "4242" in table and "default,mail" in table
    assert "1/8" in table and " ago" in table
    (doc,) = run_cli.json("workers")
    assert doc["id"] == "cvt-host-1" and doc["jobs"] == info.jobs and doc["last_seen_ms"] > 0


def test_pause_and_resume(run_cli: Cli) -> None:
    def paused() -> bool:
        return run_cli.broker(lambda b: b.is_paused("mail"))

    assert run_cli.ok("queue", "pause", "mail").stdout.strip() == "paused queue mail"
    assert paused()
    assert run_cli.json("queue", "resume", "mail") == {"queue": "mail", "paused": False}
    assert not paused()
    assert run_cli("queue", "pause", "bad queue").exit_code == 2


def test_queue_delete(run_cli: Cli) -> None:
    (dead,) = run_cli.make_dead(1, queue="tmp")
    busy = run_cli("queue", "delete", "tmp")
    assert busy.exit_code == 1
    assert busy.stderr.startswith("error: invalid_state: queue tmp still holds 1 job(s)")
    assert run_cli.ok("dlq", "purge", dead, "--yes")
    assert run_cli.ok("queue", "delete", "tmp").stdout.strip() == "deleted queue tmp"
    assert "tmp" not in run_cli.json("stats")
    gone = run_cli("queue", "delete", "tmp")
    assert gone.exit_code == 1 and gone.stderr.startswith("error: queue_not_found: ")
    run_cli.ok("queue", "pause", "idle")
    assert run_cli.json("queue", "delete", "idle") == {"queue": "idle", "deleted": True}
    assert run_cli("queue", "delete", "bad queue").exit_code == 2


def test_worker_rejects_bad_arguments_before_starting(run_cli: Cli) -> None:
    for args in (["--queues", "a,bad queue"], ["--queues", ","], ["--concurrency", "0"],
                 ["--lease", "soon"], ["--lease", "0"]):
        result = run_cli("worker", *args)
        assert result.exit_code == 2, (args, result.output)
    result = run_cli("worker", "--app", "cvt_no_such_module_xyz")
    assert result.exit_code == 2
    assert "cannot import handler module 'cvt_no_such_module_xyz'" in result.stderr


def test_bad_settings_exit_2(run_cli: Cli) -> None:
    result = run_cli("--key-prefix", "has space", "stats")
    assert result.exit_code == 2
    assert "invalid settings: key_prefix (--key-prefix or CONVEYOR_KEY_PREFIX)" in result.stderr

    result = run_cli("stats", env={"CONVEYOR_RETENTION_S": "forever"})
    assert result.exit_code == 2
    assert "retention_s (CONVEYOR_RETENTION_S)" in result.stderr


def test_broker_url_from_the_environment(run_cli: Cli) -> None:
    env = {**clean_env(), "CONVEYOR_BROKER_URL": "redis://127.0.0.1:1/0"}
    result = run_cli.runner.invoke(cli, ["--key-prefix", run_cli.prefix, "stats"], env=env)
    assert result.exit_code == 1 and "broker_unavailable" in result.stderr
