"""Fixtures of the CLI tests; helpers live in cli_support."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest
from cli_support import Cli, delete_prefix
from click.testing import CliRunner


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"cvt-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        delete_prefix(name)


@pytest.fixture
def run_cli(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    # `--app` puts the cwd on sys.path; keep that from leaking into other tests.
    monkeypatch.setattr(sys, "path", list(sys.path))
    return Cli(prefix, CliRunner())
