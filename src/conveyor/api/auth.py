"""Bearer-key authentication of the `/v1` routes (and `/metrics`), from `CONVEYOR_API_KEYS`.

Every configured key is compared, in constant time, whatever matched before, so the time taken
says nothing about which key or how much of one was right.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api.errors import Unauthorized

#: documents the scheme in OpenAPI; the check itself is ours (401, not FastAPI's 403)
bearer_scheme = HTTPBearer(auto_error=False, description="A key from CONVEYOR_API_KEYS")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def parse_keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode("utf-8") for k in keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def accepts(self, token: str | None) -> bool:
        if not token:
            return False
        # Header values arrive decoded as latin-1: encoding back gives the bytes sent, which
        # match a UTF-8 key sent as UTF-8.
        given = token.encode("latin-1", "replace")
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return ok


def require_key(keys: ApiKeys) -> Callable[..., Awaitable[None]]:
    """A route dependency that refuses requests without a valid key (401)."""

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> None:
        if credentials is None or not keys.accepts(credentials.credentials):
            raise Unauthorized("a valid API key is required: Authorization: Bearer <key>")

    return check
