"""Standard Webhooks signatures (https://www.standardwebhooks.com), through the reference
implementation of the standard-webhooks project (`standardwebhooks` on PyPI) rather than
our own HMAC code: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
with a `whsec_<base64>` secret.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

SECRET_PREFIX = "whsec_"
#: 32 random bytes: the spec asks for 24 to 64; HMAC-SHA256 gains nothing past 32
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: a message id never holds a `.`: it is the separator of the signed content
MSG_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

__all__ = [
    "WebhookVerificationError",
    "check_secret",
    "generate_secret",
    "sign",
    "signature_headers",
    "verify",
]


def generate_secret() -> str:
    """A new `whsec_` secret: 32 bytes from the OS's CSPRNG, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> str:
    """The secret if it is `whsec_` + base64 of 24-64 bytes; ValueError otherwise. Used on
    records read back from the broker, so a damaged secret fails loudly, not as bad HMACs."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"not {len(raw)}"
        )
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 signature>` of one message at one attempt's timestamp (seconds)."""
    if not MSG_ID_RE.fullmatch(msg_id):
        raise ValueError(f"invalid webhook message id {msg_id!r}")
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    return str(Webhook(check_secret(secret)).sign(msg_id, at, body))


def signature_headers(
    secret: str, msg_id: str, body: str, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (timestamp: now by default; the
    receiver rejects stale ones, so each retry is signed afresh)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(secret: str, body: str | bytes, headers: dict[str, str]) -> Any:
    """A receiver's check (signature and a 5-minute timestamp tolerance); returns the parsed
    JSON body, raises `WebhookVerificationError`. For users' receivers and docs examples."""
    return Webhook(check_secret(secret)).verify(body, headers)
