"""Bad values for the CLI's options, arguments and settings: each one a clean error line and
its README exit code (2 bad usage, 1 failure), never a traceback.

The ones marked "was a traceback" printed one before (a URL whose port is not a number or
out of range, a broken IPv6 URL, a Redis database index Redis refuses, an env setting that is
not JSON, a payload nested too deeply for `json.loads`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.cli.main import cli
from tests.cli.cli_support import Cli, clean_env

DEEP = "[" * 100_000 + "]" * 100_000
MISSING = "default:00000000000000000000000000000000"

CASES: list[tuple[str, list[str], dict[str, str], int]] = [
    # (id, args, env, exit code)
    ("payload-not-json", ["enqueue", "fake", "--payload", "{bad"], {}, 2),
    ("payload-too-deep", ["enqueue", "fake", "--payload", "@DEEP"], {}, 2),  # was a traceback
    ("payload-nan", ["enqueue", "fake", "--payload", '{"duration_ms": NaN}'], {}, 2),
    ("payload-no-file", ["enqueue", "fake", "--payload", "@/nonexistent/p.json"], {}, 2),
    ("duration-word", ["enqueue", "fake", "--delay", "soon"], {}, 2),
    ("duration-nan", ["enqueue", "fake", "--timeout", "nan"], {}, 2),
    ("duration-huge", ["enqueue", "fake", "--delay", "99999999d"], {}, 2),
    ("priority-huge", ["enqueue", "fake", "--priority", "99999999999999999999"], {}, 2),
    ("number-word", ["dlq", "list", "--limit", "many"], {}, 2),
    ("time-no-zone", ["enqueue", "fake", "--run-at", "2030-01-01T00:00:00"], {}, 2),
    ("time-garbage", ["dlq", "list", "--died-before", "yesterday"], {}, 2),
    ("queue-name", ["queue", "pause", "no spaces"], {}, 2),
    ("job-id", ["job", "show", "not-an-id"], {}, 2),
    ("state", ["jobs", "list", "--state", "done"], {}, 2),
    ("app-missing", ["enqueue", "fake", "--app", "no_such_module_cvt"], {}, 2),
    ("app-relative", ["enqueue", "fake", "--app", "..bad"], {}, 2),
    ("app-env", ["enqueue", "fake"], {"CONVEYOR_APP": "no_such_module_cvt"}, 2),
    ("url-scheme", ["--broker-url", "amqp://localhost", "stats"], {}, 2),
    ("url-port-word", ["--broker-url", "redis://127.0.0.1:abc/0", "stats"], {}, 2),  # was one
    ("url-port-range", ["--broker-url", "redis://127.0.0.1:99999/0", "stats"], {}, 2),  # was
    ("url-ipv6", ["--broker-url", "redis://[::1", "stats"], {}, 2),  # was a traceback
    ("url-sqlite-memory", ["--broker-url", "sqlite:///:memory:", "stats"], {}, 2),
    ("url-sqlite-option", ["--broker-url", "sqlite:///x.db?synchronous=sometimes", "stats"],
     {}, 2),
    ("key-prefix", ["--key-prefix", "no spaces!", "stats"], {}, 2),
    ("env-number", ["stats"], {"CONVEYOR_LEASE_S": "abc"}, 2),
    ("env-negative", ["stats"], {"CONVEYOR_REAP_INTERVAL_S": "-1"}, 2),
    ("env-json", ["stats"], {"CONVEYOR_QUEUE_RETENTION_S": "{bad"}, 2),  # was a traceback
    ("env-json-type", ["stats"], {"CONVEYOR_QUEUE_RETENTION_S": "[1]"}, 2),
    ("env-bool", ["stats"], {"CONVEYOR_SMTP_TLS": "maybe"}, 2),
    ("env-log-format", ["stats"], {"CONVEYOR_LOG_FORMAT": "xml"}, 2),
    ("env-url", ["stats"], {"CONVEYOR_BROKER_URL": "redis://h:port/0"}, 2),  # was a traceback
    ("option-log-format", ["worker", "--log-format", "xml"], {}, 2),
    ("worker-concurrency", ["worker", "--concurrency", "0"], {}, 2),
    ("worker-url", ["--broker-url", "redis://h:x/0", "worker"], {}, 2),  # was a traceback
    ("unreachable", ["--broker-url", "redis://127.0.0.1:1/0", "stats"], {}, 1),
    ("redis-db-index", ["--broker-url", "redis://127.0.0.1:6379/99999", "stats"], {}, 1),  # was
    ("not-found", ["job", "show", MISSING], {}, 1),
    ("sqlite-not-a-db", ["--broker-url", "sqlite:////etc/hostname", "stats"], {}, 1),
]


@pytest.mark.parametrize(("args", "env", "code"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_error(
    run_cli: Cli, tmp_path: Path, args: list[str], env: dict[str, str], code: int
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    args = [f"@{deep}" if a == "@DEEP" else a for a in args]
    if "CONVEYOR_BROKER_URL" in env:  # run_cli's --broker-url would win over it
        res = run_cli.runner.invoke(cli, args, env={**clean_env(), **env})
    else:
        res = run_cli(*args, env=env)
    assert res.exit_code == code, (res.output, res.exception)
    assert isinstance(res.exception, SystemExit), res.exception  # nothing escaped
    assert "Traceback" not in res.output
    assert "internal_error" not in res.output  # each handled on purpose, not by the net
    first = res.stderr.splitlines()[0]
    assert first.startswith(("error: ", "Error: ", "Usage: ")), res.stderr
