"""One HTTP POST of a webhook, to an address already checked (urls.checked_addresses).

The request goes to the IP address itself, so nothing resolves the name again, while the
`Host` header and the TLS SNI / certificate check keep the name: the receiver sees the URL
it registered and a certificate is still verified for that name. Redirects are never
followed, proxies from the environment never used (either would reach an unchecked
address), and at most 1 KiB of the answer is read.
"""

from __future__ import annotations

import functools
import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from conveyor.webhooks.urls import IPAddress, WebhookUrl

#: addresses of one name tried in turn when a connection cannot be made (nothing was sent)
MAX_CONNECT_TRIES = 4
#: bytes of the answer kept for the delivery log
MAX_BODY_KEPT = 1024
USER_AGENT = "conveyor-webhooks/1"
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f]+")


class SendError(Exception):
    """The POST got no answer: `timeout` (sent, or connecting, until the deadline) or
    `unreachable` (no connection, a reset, a broken answer)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    address: str
    elapsed_ms: int
    #: the start of the body, as text, control characters folded to spaces
    body: str
    retry_after_s: float | None
    location: str | None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After: 120` or an HTTP date, as seconds from now (>= 0); None if absent or
    unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@functools.lru_cache(maxsize=1)
def default_tls() -> ssl.SSLContext:
    """The system-trust TLS context, built once: building one per client costs ~40 ms."""
    return httpx.create_ssl_context()


def _request_url(target: WebhookUrl, addr: IPAddress) -> httpx.URL:
    return target.parsed.copy_with(host=str(addr))


async def _read_start(resp: httpx.Response) -> str:
    kept = b""
    async for chunk in resp.aiter_raw():
        kept += chunk
        if len(kept) >= MAX_BODY_KEPT:
            break
    text = kept[:MAX_BODY_KEPT].decode("utf-8", "replace")
    return _UNPRINTABLE_RE.sub(" ", text).strip()


async def post(
    target: WebhookUrl,
    addresses: list[IPAddress],
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    verify: ssl.SSLContext | bool = True,
) -> Answer:
    """POST `body` to the first of `addresses` that accepts a connection."""
    sni = {"sni_hostname": target.host} if target.scheme == "https" and target.ip is None else {}
    sent_headers = {
        **headers, "host": target.netloc, "content-type": "application/json",
        "user-agent": USER_AGENT, "accept-encoding": "identity",
    }
    tls = default_tls() if verify is True else verify
    failure = "no address to connect to"
    for addr in addresses[:MAX_CONNECT_TRIES]:
        start = time.monotonic()
        async with httpx.AsyncClient(
            verify=tls, trust_env=False, follow_redirects=False,
            timeout=httpx.Timeout(timeout_s),
        ) as client:
            request = client.build_request(
                "POST", _request_url(target, addr), content=body, headers=sent_headers,
                extensions=sni,
            )
            try:
                resp = await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = f"cannot connect to {addr}: {exc or type(exc).__name__}"
                continue  # nothing was sent: the next address may answer
            except httpx.TimeoutException as exc:
                raise SendError("timeout", f"no answer from {addr} within {timeout_s:g}s "
                                f"({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise SendError("unreachable",
                                f"{addr}: {type(exc).__name__}: {exc}") from exc
            try:
                kept = await _read_start(resp)
            except httpx.HTTPError:
                kept = ""  # the status line is the answer; a broken body does not undo it
            finally:
                await resp.aclose()
            return Answer(
                status=resp.status_code, address=str(addr),
                elapsed_ms=int((time.monotonic() - start) * 1000), body=kept,
                retry_after_s=parse_retry_after(resp.headers.get("retry-after")),
                location=resp.headers.get("location"),
            )
    raise SendError("unreachable", failure)
