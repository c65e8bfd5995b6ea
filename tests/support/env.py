"""The shared Redis the tests run against, and a fresh key prefix per test."""

from __future__ import annotations

import os
import uuid

#: the shared Redis (tests isolate by key prefix; never FLUSHALL)
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"cvt-{uuid.uuid4().hex[:8]}"
