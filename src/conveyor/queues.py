"""Queue names, job type names and the rules they follow (the seed's queue.constants)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from conveyor.errors import ValidationError

DEFAULT_QUEUE = "default"
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: job types, and error codes (the API, the DLQ filters and the brokers check both with it)
TYPE_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

PRIORITY_MIN = -1000
PRIORITY_MAX = 1000


def validate_queue_name(name: str) -> str:
    if not isinstance(name, str) or not QUEUE_NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid queue name {name!r}: 1-64 characters of A-Z a-z 0-9 _ . -",
            details={"field": "queue", "value": name},
        )
    return name


def _check(name: str) -> str:
    if not QUEUE_NAME_RE.fullmatch(name):
        raise ValueError("queue name must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return name


QueueName = Annotated[str, AfterValidator(_check)]


def parse_queue_list(text: str) -> list[str]:
    """Parse `a,b,c` into validated, de-duplicated queue names, keeping order."""
    names: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        validate_queue_name(part)
        if part not in names:
            names.append(part)
    if not names:
        raise ValidationError("at least one queue name is required", details={"value": text})
    return names
