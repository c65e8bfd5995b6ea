"""A Standard Webhooks verifier written from the specification's text alone (spec/
standard-webhooks.md, "Signature scheme", "Webhook headers", "Verifying signatures"), sharing
no code with Conveyor or the `standardwebhooks` package that signs: HMAC-SHA256 keyed by the
base64 secret after `whsec_`, over `{webhook-id}.{webhook-timestamp}.{body}`, base64, sent as
space-separated `v1,<signature>` entries; the timestamp within a tolerance of now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_S = 300


class BadSignature(AssertionError):
    pass


def verify(
    secret: str, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = lower["webhook-timestamp"]
        signatures = lower["webhook-signature"]
    except KeyError as exc:
        raise BadSignature(f"missing header {exc}") from None
    if "." in msg_id:
        raise BadSignature("a webhook-id must not contain '.'")
    if not timestamp.isdigit():
        raise BadSignature(f"webhook-timestamp {timestamp!r} is not an integer")
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_S:
        raise BadSignature(f"webhook-timestamp {timestamp} is outside the tolerance")
    if not secret.startswith("whsec_"):
        raise BadSignature("secrets are whsec_-prefixed")
    key = base64.b64decode(secret[len("whsec_"):])
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(value), expected):
            return
    raise BadSignature(f"no v1 signature matches in {signatures!r}")
