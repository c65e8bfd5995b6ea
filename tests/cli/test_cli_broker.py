"""Every command says which broker it used (password redacted), and a command that only reads
or changes existing jobs never creates a SQLite file: it says the file is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli.broker import redact_url
from conveyor.cli.main import cli
from tests.cli.cli_support import Cli, clean_env
from tests.support.env import REDIS_URL


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:s3cret@10.0.0.1:6379/2", "redis://:***@10.0.0.1:6379/2"),
    ("rediss://app:s3cret@cache.example:6380/0", "rediss://app:***@cache.example:6380/0"),
    ("redis://s3cret@host/0", "redis://***@host/0"),
    ("redis://host:6379/0?password=s3cret&db=1", "redis://host:6379/0?password=***&db=1"),
    ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=0"),
    ("sqlite:///conveyor.db", "sqlite:///conveyor.db"),
    ("sqlite:////var/lib/conveyor/jobs.db?synchronous=full",
     "sqlite:////var/lib/conveyor/jobs.db?synchronous=full"),
    ("redis://:s3cret@[::1", "redis://***@[::1"),  # does not parse: still no password
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def _last_err_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_every_command_names_its_broker_last(run_cli: Cli) -> None:
    for args in (["stats"], ["workers"], ["dlq", "list"], ["jobs", "list"],
                 ["enqueue", "fake"], ["queue", "resume", "default"]):
        res = run_cli.ok(*args)
        assert _last_err_line(res.stderr) == (
            f"broker: {REDIS_URL} (key prefix {run_cli.prefix})"), args


def test_the_broker_line_of_a_failure_comes_after_the_error(run_cli: Cli) -> None:
    res = run_cli("job", "show", "default:00000000000000000000000000000000")
    assert res.exit_code == 1
    first, last = res.stderr.strip().splitlines()
    assert first.startswith("error: job_not_found: ")
    assert last.startswith("broker: redis://")


def test_json_mode_names_the_broker_in_json(run_cli: Cli) -> None:
    res = run_cli.ok("--json", "stats")
    json.loads(res.stdout)  # stdout stays the result alone
    assert json.loads(_last_err_line(res.stderr)) == {"broker": {
        "url": REDIS_URL, "kind": "redis", "key_prefix": run_cli.prefix}}


def test_the_password_never_shows(prefix: str) -> None:
    res = CliRunner().invoke(
        cli, ["--broker-url", "redis://:s3cret@127.0.0.1:1/0", "--key-prefix", prefix, "stats"],
        env=clean_env(),
    )
    assert res.exit_code == 1
    assert "s3cret" not in res.output
    assert "broker: redis://:***@127.0.0.1:1/0" in res.stderr


# --- a SQLite file that is not there ------------------------------------------------------

READ_ONLY = [
    ["stats"], ["workers"], ["dlq", "list"], ["jobs", "list"],
    ["job", "show", "default:00000000000000000000000000000000"],
    ["job", "retry", "default:00000000000000000000000000000000"],
    ["job", "cancel", "default:00000000000000000000000000000000"],
    ["dlq", "redrive", "--all"], ["dlq", "purge", "--all", "--yes"],
    ["queue", "pause", "default"], ["queue", "resume", "default"],
]


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sqlite(*args: str, as_json: bool = False) -> tuple[int, str, str]:
    head = ["--json"] if as_json else []
    res = CliRunner().invoke(cli, [*head, *args], env=clean_env())  # default sqlite:///conveyor.db
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_do_not_create_the_file(empty_dir: Path, args: list[str]) -> None:
    code, stdout, stderr = _sqlite(*args)
    assert code == 1, stderr
    path = empty_dir / "conveyor.db"
    assert stderr.startswith(f"error: broker_unavailable: no SQLite broker at {path}: ")
    assert _last_err_line(stderr) == f"broker: sqlite:///conveyor.db ({path})"
    assert stdout == ""
    assert list(empty_dir.iterdir()) == []


def test_the_missing_file_error_in_json(empty_dir: Path) -> None:
    code, stdout, stderr = _sqlite("stats", as_json=True)
    assert code == 1 and stdout == ""
    error, broker = (json.loads(line) for line in stderr.splitlines())
    assert error["error"]["code"] == "broker_unavailable"
    assert error["error"]["details"] == {"path": str(empty_dir / "conveyor.db")}
    assert broker["broker"]["kind"] == "sqlite"


def test_enqueue_creates_the_file_then_reads_work(empty_dir: Path) -> None:
    code, stdout, stderr = _sqlite("enqueue", "fake")
    assert code == 0, stderr
    assert (empty_dir / "conveyor.db").exists()
    code, stdout, stderr = _sqlite("--json", "stats")
    assert code == 0, stderr
    assert json.loads(stdout)["default"]["queued"] == 1
