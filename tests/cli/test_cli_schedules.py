"""`conveyor schedule ...` (issue 15): set (cron or --every), list, show, pause, resume,
trigger, runs, preview and delete, with --json, and bad input refused before anything is
stored (exit 2)."""

from __future__ import annotations

from tests.cli.cli_support import Cli


def test_schedule_lifecycle(run_cli: Cli) -> None:
    out = run_cli.ok("schedule", "set", "nightly", "--cron", "30 2 * * *", "--type", "fake",
                     "--payload", '{"result": 3}', "--queue", "cron-q",
                     "--timezone", "America/New_York", "--overlap", "skip").stdout
    assert out.startswith("created schedule nightly")
    assert "America/New_York" in out and "skip" in out
    again = run_cli.ok("schedule", "set", "nightly", "--cron", "30 2 * * *", "--type",
                       "fake", "--payload", '{"result": 3}', "--queue", "cron-q",
                       "--timezone", "America/New_York", "--overlap", "skip").stdout
    assert again.startswith("unchanged schedule nightly")
    view = run_cli.json("schedule", "show", "nightly")
    assert view["cron"] == "30 2 * * *" and view["job"]["queue"] == "cron-q"
    assert len(view["next_runs"]) == 5 and view["paused"] is False
    run_cli.ok("schedule", "set", "often", "--every", "30s", "--type", "fake")
    listed = run_cli.json("schedule", "list")
    assert [s["name"] for s in listed["items"]] == ["nightly", "often"]
    assert listed["items"][1]["every_s"] == 30
    table = run_cli.ok("schedule", "list").stdout
    assert "nightly" in table and "often" in table
    assert run_cli.json("schedule", "pause", "nightly")["paused"] is True
    assert run_cli.json("schedule", "resume", "nightly")["paused"] is False
    job = run_cli.json("schedule", "trigger", "nightly")
    assert job["schedule"] == {"name": "nightly", "tick": None} and job["queue"] == "cron-q"
    runs = run_cli.json("schedule", "runs", "nightly")
    assert [j["id"] for j in runs["items"]] == [job["id"]]
    assert "manual" in run_cli.ok("schedule", "runs", "nightly").stdout
    assert run_cli.ok("schedule", "delete", "nightly").stdout.strip() == (
        "deleted schedule nightly")
    gone = run_cli("schedule", "show", "nightly")
    assert gone.exit_code == 1 and "schedule_not_found" in gone.stderr


def test_preview(run_cli: Cli) -> None:
    runs = run_cli.json("schedule", "preview", "--cron", "30 2 * * *", "--tz",
                        "America/New_York", "--after", "2027-03-13T12:00:00Z", "--count", "2")
    assert runs == {"runs": ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z"]}
    out = run_cli.ok("schedule", "preview", "--every", "1h", "--count", "3").stdout
    assert len(out.split()) == 3


def test_bad_input_stores_nothing(run_cli: Cli) -> None:
    for args in (["--cron", "61 * * * *"], ["--cron", "* * * * *", "--every", "5s"], [],
                 ["--every", "5s", "--timezone", "Mars/Olympus"]):
        result = run_cli("schedule", "set", "bad", "--type", "fake", *args)
        assert result.exit_code == 2, (args, result.output)
    result = run_cli("schedule", "set", "bad", "--every", "5s", "--type", "no.such")
    assert result.exit_code == 2 and "validation_error" in result.stderr
    assert run_cli.json("schedule", "list") == {"items": [], "next_cursor": None}
