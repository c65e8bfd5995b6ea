"""Which URLs a webhook may be sent to (SSRF rules). Checked at subscribe time and again at
every delivery after DNS: every address a name resolves to must pass, and the delivery then
connects to one of those checked addresses (never resolving the name a second time), so a
name that changes its answer between the check and the connect (DNS rebinding) gains nothing.

URLs are parsed by httpx, the client that sends them: one parser for the check and the
request, so no parser differential can smuggle a different host past the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from conveyor.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: `(host, port) -> addresses`; the default asks the system resolver (getaddrinfo)
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
#: refused whatever CONVEYOR_WEBHOOK_ALLOW_PRIVATE says: never a unicast endpoint
ALWAYS_REFUSED = frozenset({"unspecified", "multicast", "broadcast"})
#: reasons that are about the address (the rest are about the URL's spelling)
ADDRESS_REASONS = frozenset({"loopback", "private", "link_local", "reserved"}) | ALWAYS_REFUSED

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# 127.1, 0x7f.1, 2130706433: spellings getaddrinfo reads as IPv4 addresses
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_BAD_CHARS_RE = re.compile(r"[\x00-\x20\x7f\\]")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# The IANA special-purpose registries, spelled out rather than taken from ipaddress' flags,
# whose lists differ between Python versions (3.11 calls 240/4 private, 100.64/10 not).
# First match wins; anything else not global (ipaddress.is_global) is "reserved".
_SPECIAL: tuple[tuple[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("broadcast", _nets("255.255.255.255/32")),
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("link_local", _nets("169.254.0.0/16", "fe80::/10")),
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                      "fc00::/7", "fec0::/10", "64:ff9b:1::/48")),
    ("reserved", _nets("192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15",
                       "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "::/96",
                       "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16")),
)


class WebhookUrlError(ValidationError):
    """A URL or address a webhook may not use; `reason` is a stable word (see urls.py)."""

    def __init__(self, message: str, *, reason: str, address: str | None = None) -> None:
        detail: dict[str, Any] = {"loc": ["url"], "msg": message, "type": "webhook_url",
                                  "reason": reason}
        if address is not None:
            detail["address"] = address
        super().__init__(message, details=[detail])
        self.reason = reason
        self.address = address


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A URL that passed the spelling checks. `host` is the ASCII (IDNA) name or the IP
    literal; `ip` is set for a literal; `netloc` is what the Host header says."""

    url: str
    scheme: str
    host: str
    port: int
    netloc: str
    ip: IPAddress | None

    @property
    def parsed(self) -> httpx.URL:
        return httpx.URL(self.url)


def _refuse(message: str, reason: str, address: str | None = None) -> WebhookUrlError:
    return WebhookUrlError(message, reason=reason, address=address)


def parse_webhook_url(url: Any) -> WebhookUrl:
    """Spelling checks: http(s), a host, no credentials, no fragment, a port in range, at
    most 2048 characters, a well-formed name (or an IP literal, checked here at once)."""
    if not isinstance(url, str) or not url:
        raise _refuse("the webhook URL must be a non-empty string", "malformed")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"the webhook URL is longer than {MAX_URL_LENGTH} characters", "too_long")
    if _BAD_CHARS_RE.search(url):
        raise _refuse("the webhook URL holds a space, a control character or a backslash",
                      "malformed")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise _refuse(f"the webhook URL does not parse: {exc}", "malformed") from None
    if parsed.scheme not in SCHEMES:
        raise _refuse("the webhook URL must be http:// or https://", "scheme")
    if parsed.userinfo or "@" in parsed.netloc.decode("ascii", "replace"):
        raise _refuse("the webhook URL must not carry credentials (user:password@)",
                      "credentials")
    if parsed.fragment or "#" in url:
        raise _refuse("the webhook URL must not have a #fragment (it is never sent)",
                      "fragment")
    port = parsed.port if parsed.port is not None else SCHEMES[parsed.scheme]
    if not 1 <= port <= 65535:
        raise _refuse(f"the webhook URL's port {port} is not in 1-65535", "port")
    host = parsed.raw_host.decode("ascii", "replace").lower()
    ip = _ip_literal(host)
    if ip is None:
        _check_name(host)
    return WebhookUrl(url=str(parsed), scheme=parsed.scheme, host=host, port=port,
                      netloc=parsed.netloc.decode("ascii"), ip=ip)


def _ip_literal(host: str) -> IPAddress | None:
    if "%" in host:  # a zone id (fe80::1%eth0) or a percent-encoded name
        raise _refuse("the webhook URL's host must not hold '%'", "host")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_name(host: str) -> None:
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL_RE.fullmatch(lb) for lb in labels):
        raise _refuse(f"the webhook URL's host {host!r} is not a valid host name", "host")
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        raise _refuse(f"the webhook URL's host {host!r} is neither a name nor an IP address",
                      "host")


def _embedded_v4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped, 6to4, NAT64 well-known."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, "ipv4_mapped"
    if addr.sixtofour is not None:
        return addr.sixtofour, "6to4"
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF), "nat64"
    return None


def _reason(addr: IPAddress) -> str | None:
    for reason, nets in _SPECIAL:
        if any(addr.version == net.version and addr in net for net in nets):
            return reason
    return None if addr.is_global else "reserved"


def address_refusal(addr: IPAddress, *, allow_private: bool) -> tuple[str, str | None] | None:
    """Why `addr` may not be a webhook endpoint, as (reason, embedding form), or None.

    An IPv6 address embedding an IPv4 one is judged by the IPv4 address (::ffff:127.0.0.1 is
    the loopback). `allow_private` lifts every refusal but unspecified, multicast and
    broadcast, which no endpoint can have."""
    via: str | None = None
    if isinstance(addr, ipaddress.IPv6Address) and (embedded := _embedded_v4(addr)):
        addr, via = embedded
    reason = _reason(addr)
    if reason is None or (allow_private and reason not in ALWAYS_REFUSED):
        return None
    return reason, via


def check_address(addr: IPAddress, *, allow_private: bool, host: str) -> None:
    refusal = address_refusal(addr, allow_private=allow_private)
    if refusal is None:
        return
    reason, via = refusal
    how = f" ({via} form)" if via else ""
    seen = f"{host!r} resolves to {addr}" if host != str(addr) else f"{addr}"
    hint = "" if reason in ALWAYS_REFUSED else " (CONVEYOR_WEBHOOK_ALLOW_PRIVATE=true allows it)"
    raise _refuse(f"{seen}: a {reason.replace('_', '-')} address{how} is refused{hint}",
                  reason, str(addr))


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address getaddrinfo gives for (host, port), in its order, each once."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    out: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in out:
            out.append(addr)
    return out


async def checked_addresses(
    target: WebhookUrl, *, allow_private: bool, resolver: Resolver | None = None
) -> list[IPAddress]:
    """The addresses to connect to: the literal, or every address the name resolves to,
    each checked; one refused address refuses the URL (the resolver picks which we'd get)."""
    if target.ip is not None:
        check_address(target.ip, allow_private=allow_private, host=target.host)
        return [target.ip]
    if not allow_private and target.host.rstrip(".").split(".")[-1] == "localhost":
        # RFC 6761: the loopback whatever a resolver says, so refused before asking one
        check_address(ipaddress.IPv4Address("127.0.0.1"), allow_private=False,
                      host=target.host)
    try:
        addrs = await (resolver or system_resolver)(target.host, target.port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise _refuse(f"{target.host!r} does not resolve: {exc}", "unresolvable") from None
    if not addrs:
        raise _refuse(f"{target.host!r} resolves to no address", "unresolvable")
    for addr in addrs:
        check_address(addr, allow_private=allow_private, host=target.host)
    return addrs


async def validate_webhook_url(
    url: Any, *, allow_private: bool, resolver: Resolver | None = None, timeout_s: float = 10.0
) -> WebhookUrl:
    """Subscribe time: the spelling, then DNS and every address (a name that does not
    resolve is refused too: a typo is better caught now than after a day of retries)."""
    target = parse_webhook_url(url)
    try:
        async with asyncio.timeout(timeout_s):
            await checked_addresses(target, allow_private=allow_private, resolver=resolver)
    except TimeoutError:
        raise _refuse(f"{target.host!r} did not resolve within {timeout_s:g}s",
                      "unresolvable") from None
    return target
