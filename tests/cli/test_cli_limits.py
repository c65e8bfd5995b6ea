"""`conveyor queue limits` / `conveyor queue keys` and `enqueue --limit-key` (flow control)."""

from __future__ import annotations

from tests.cli.cli_support import Cli


def test_limits_set_show_clear(run_cli: Cli) -> None:
    out = run_cli.json("queue", "limits", "emails", "--concurrency", "3", "--key-rate", "5/s",
                       "--key-burst", "2", "--weight", "acme=4")
    assert out == {"queue": "emails", "concurrency": 3, "rate": None, "key_concurrency": None,
                   "key_rate": {"count": 5, "per_s": 1.0, "burst": 2},
                   "key_weights": {"acme": 4}}
    assert run_cli.json("queue", "limits", "emails") == out
    assert "concurrency 3" in run_cli.ok("queue", "limits", "emails").stdout
    cleared = run_cli.json("queue", "limits", "emails", "--clear")
    assert cleared["concurrency"] is None
    assert "no limits" in run_cli.ok("queue", "limits", "emails").stdout


def test_bad_limits_change_nothing(run_cli: Cli) -> None:
    run_cli.ok("queue", "limits", "emails", "--concurrency", "2")
    for bad in (["--concurrency", "0"], ["--rate", "5/0s"], ["--rate", "fast"],
                ["--weight", "acme"], ["--clear", "--concurrency", "1"]):
        assert run_cli("queue", "limits", "emails", *bad).exit_code == 2, bad
    assert run_cli.json("queue", "limits", "emails")["concurrency"] == 2


def test_enqueue_with_a_limit_key_and_list_keys(run_cli: Cli) -> None:
    run_cli.ok("queue", "limits", "emails", "--key-concurrency", "1")
    for _ in range(2):
        job = run_cli.json("enqueue", "fake", "-q", "emails", "--limit-key", "acme")
        assert job["limit_key"] == "acme"
    assert run_cli("enqueue", "fake", "-q", "emails", "--limit-key", "x" * 129).exit_code != 0
    leased = run_cli.broker(lambda b: b.fetch("emails", 10, "w", 60_000))
    assert len(leased.deliveries) == 1  # key_concurrency 1: the other one waits
    keys = run_cli.json("queue", "keys", "emails")
    assert [(k["key"], k["backlog"], k["running"], k["held"]) for k in keys] == [
        ("acme", 1, 1, True)]
    assert "acme" in run_cli.ok("queue", "keys", "emails").stdout
