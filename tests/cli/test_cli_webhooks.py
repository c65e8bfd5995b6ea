"""`conveyor webhook add|list|show|delete` over the real Redis: the secret printed once,
never by list or show, JSON output, and bad input as usage errors (exit 2)."""

from __future__ import annotations

import json

from tests.cli.cli_support import Cli

URL = "https://9.9.9.9/hook"


def test_add_list_show_delete(run_cli: Cli) -> None:
    added = run_cli.ok("--json", "webhook", "add", URL, "-e", "job.dead", "-e",
                       "job.succeeded", "-q", "mail")
    sub = json.loads(added.stdout)
    assert sub["secret"].startswith("whsec_") and sub["queues"] == ["mail"]
    listed = json.loads(run_cli.ok("--json", "webhook", "list").stdout)
    assert listed == [{k: v for k, v in sub.items() if k != "secret"}]
    shown = run_cli.ok("webhook", "show", sub["id"]).stdout
    assert URL in shown and "job.dead, job.succeeded" in shown and sub["secret"] not in shown
    table = run_cli.ok("webhook", "list").stdout
    assert sub["id"] in table and sub["secret"] not in table
    assert run_cli.ok("webhook", "delete", sub["id"]).stdout.strip() == (
        f"deleted webhook {sub['id']}")
    missing = run_cli("webhook", "delete", sub["id"])
    assert missing.exit_code == 1 and "webhook_not_found" in missing.output
    assert run_cli.ok("webhook", "list").stdout.strip() == "no webhook subscriptions"


def test_add_prints_the_secret_in_text(run_cli: Cli) -> None:
    out = run_cli.ok("webhook", "add", URL, "-e", "job.dead").stdout
    assert "secret:" in out and "whsec_" in out


def test_bad_input_is_a_usage_error(run_cli: Cli) -> None:
    for args in (("add", URL, "-e", "job.nope"), ("add", "ftp://9.9.9.9/", "-e", "job.dead"),
                 ("add", "http://127.0.0.1/", "-e", "job.dead"), ("add", URL),
                 ("show", "wh_123"), ("delete", "nope")):
        result = run_cli("webhook", *args)
        assert result.exit_code == 2, (args, result.output)
    refused = run_cli("--json", "webhook", "add", "http://10.0.0.1/", "-e", "job.dead")
    err = json.loads(refused.stderr.splitlines()[0])["error"]
    assert err["code"] == "validation_error" and err["details"][0]["reason"] == "private"
    assert run_cli.ok("webhook", "list").stdout.strip() == "no webhook subscriptions"
