"""The SSRF rules of webhook URLs: spelling, every special address range (and IPv6 forms that
embed one), DNS answers checked whole. Nothing here opens a connection; names resolve
through the system resolver only when they are loopback names (`localhost`), else through a
resolver the test provides.
"""

from __future__ import annotations

import ipaddress

import pytest

from conveyor.webhooks.urls import (
    IPAddress,
    WebhookUrl,
    address_refusal,
    checked_addresses,
    parse_webhook_url,
    validate_webhook_url,
)
from conveyor.webhooks.urls import WebhookUrlError as UrlError


def _fixed(*answers: str) -> object:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in answers]

    return resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "malformed"),
        ("ftp://hooks.example/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://hooks.example/", "scheme"),
        ("https://user:pw@hooks.example/", "credentials"),
        ("https://user@hooks.example/", "credentials"),
        ("https://hooks.example/#part", "fragment"),
        ("https://hooks.example:0/", "port"),
        ("https://hooks.example:70000/", "port"),
        ("https:///path", "host"),
        ("https://hooks.example /x", "malformed"),
        ("https://hooks.example/\tx", "malformed"),
        ("https://hooks.example\\@evil.example/", "malformed"),
        ("https://-bad-.example/", "host"),
        ("https://a..example/", "host"),
        ("https://127.1/", "host"),  # getaddrinfo would read 127.0.0.1
        ("https://2130706433/", "host"),
        ("https://0x7f.1/", "host"),
        ("https://[fe80::1%25eth0]/", "host"),
        ("https://hooks.example/" + "a" * 2048, "too_long"),
    ],
)
def test_spelling_is_checked_first(url: str, reason: str) -> None:
    with pytest.raises(UrlError) as err:
        parse_webhook_url(url)
    assert err.value.reason == reason
    assert err.value.code == "validation_error"
    assert err.value.details[0]["loc"] == ["url"] and err.value.details[0]["reason"] == reason


@pytest.mark.parametrize("url", ["http://localhost:8080/", "https://api.localhost./x"])
async def test_localhost_names_are_loopback_before_any_dns(url: str) -> None:
    def no_dns(host: str, port: int) -> object:
        raise AssertionError("a localhost name must not be looked up")

    with pytest.raises(UrlError) as err:
        await validate_webhook_url(url, allow_private=False, resolver=no_dns)  # type: ignore[arg-type]
    assert err.value.reason == "loopback" and "resolves to 127.0.0.1" in err.value.message
    allowed = await validate_webhook_url(url, allow_private=True, resolver=_fixed("127.0.0.1"))  # type: ignore[arg-type]
    assert allowed.ip is None


def test_a_good_url_is_normalised_as_httpx_sends_it() -> None:
    target = parse_webhook_url("HTTPS://Hooks.Example:8443/In?x=1")
    assert target.url == "https://hooks.example:8443/In?x=1"
    assert (target.scheme, target.host, target.port, target.ip) == (
        "https", "hooks.example", 8443, None)
    assert target.netloc == "hooks.example:8443"
    idn = parse_webhook_url("https://bücher.example/")
    assert idn.host == "xn--bcher-kva.example" and idn.port == 443
    assert parse_webhook_url("http://[2606:4700::1111]/").ip == ipaddress.ip_address(
        "2606:4700::1111")


@pytest.mark.parametrize(
    ("address", "reason", "via"),
    [
        ("127.0.0.1", "loopback", None),
        ("127.255.0.9", "loopback", None),
        ("10.1.2.3", "private", None),
        ("172.16.0.1", "private", None),
        ("192.168.1.1", "private", None),
        ("100.64.0.1", "private", None),
        ("169.254.169.254", "link_local", None),  # the cloud metadata service
        ("224.0.0.1", "multicast", None),
        ("239.1.1.1", "multicast", None),
        ("0.0.0.0", "unspecified", None),
        ("0.1.2.3", "unspecified", None),
        ("255.255.255.255", "broadcast", None),
        ("240.0.0.1", "reserved", None),
        ("192.0.2.1", "reserved", None),
        ("192.0.0.8", "reserved", None),
        ("198.18.0.1", "reserved", None),
        ("::1", "loopback", None),
        ("::", "unspecified", None),
        ("fe80::1", "link_local", None),
        ("fc00::1", "private", None),
        ("fd12:3456::1", "private", None),
        ("fec0::1", "private", None),
        ("ff02::1", "multicast", None),
        ("::ffff:127.0.0.1", "loopback", "ipv4_mapped"),
        ("::ffff:10.0.0.1", "private", "ipv4_mapped"),
        ("::ffff:169.254.169.254", "link_local", "ipv4_mapped"),
        ("2002:7f00:1::", "loopback", "6to4"),
        ("2002:a9fe:a9fe::1", "link_local", "6to4"),
        ("64:ff9b::7f00:1", "loopback", "nat64"),
        ("64:ff9b::a00:1", "private", "nat64"),
        ("64:ff9b:1::1", "private", None),
        ("::7f00:1", "reserved", None),  # IPv4-compatible (deprecated)
        ("2001:db8::1", "reserved", None),
        ("100::1", "reserved", None),
    ],
)
def test_special_addresses_are_refused(address: str, reason: str, via: str | None) -> None:
    addr = ipaddress.ip_address(address)
    assert address_refusal(addr, allow_private=False) == (reason, via)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1",
     "64:ff9b::808:808"],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), allow_private=False) is None


def test_allow_private_lifts_all_but_the_never_endpoints() -> None:
    for text in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fc00::1", "240.0.0.1",
                 "::ffff:127.0.0.1"):
        assert address_refusal(ipaddress.ip_address(text), allow_private=True) is None
    for text, reason in (("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
                         ("255.255.255.255", "broadcast"), ("::", "unspecified")):
        assert address_refusal(ipaddress.ip_address(text), allow_private=True) == (reason, None)


async def test_every_resolved_address_must_pass() -> None:
    target = parse_webhook_url("https://hooks.example/")
    mixed = _fixed("93.184.216.34", "10.0.0.5")  # one bad answer refuses the name
    with pytest.raises(UrlError) as err:
        await checked_addresses(target, allow_private=False, resolver=mixed)  # type: ignore[arg-type]
    assert err.value.reason == "private" and err.value.address == "10.0.0.5"
    assert "hooks.example" in err.value.message and "ALLOW_PRIVATE" in err.value.message
    good = _fixed("93.184.216.34", "2606:4700::1111")
    addrs = await checked_addresses(target, allow_private=False, resolver=good)  # type: ignore[arg-type]
    assert [str(a) for a in addrs] == ["93.184.216.34", "2606:4700::1111"]


async def test_no_answer_or_a_dns_error_is_unresolvable() -> None:
    target = parse_webhook_url("https://hooks.example/")
    with pytest.raises(UrlError) as err:
        await checked_addresses(target, allow_private=False, resolver=_fixed())  # type: ignore[arg-type]
    assert err.value.reason == "unresolvable"

    async def failing(host: str, port: int) -> list[IPAddress]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(UrlError) as err:
        await checked_addresses(target, allow_private=False, resolver=failing)
    assert err.value.reason == "unresolvable"


async def test_a_literal_is_checked_without_dns() -> None:
    with pytest.raises(UrlError) as err:
        await validate_webhook_url("http://[::ffff:7f00:1]:8080/", allow_private=False)
    assert (err.value.reason, err.value.address) == ("loopback", "::ffff:7f00:1")
    target = await validate_webhook_url("http://127.0.0.1:8080/", allow_private=True)
    assert target.ip == ipaddress.ip_address("127.0.0.1")


async def test_a_name_resolving_to_loopback_is_refused_after_real_dns() -> None:
    # `localhost` is refused by its name already; here it goes through getaddrinfo as any
    # name would (the spelling check skipped), and its answer is what refuses it.
    target = WebhookUrl(url="http://localhost:8080/", scheme="http", host="localhost",
                        port=8080, netloc="localhost:8080", ip=None)
    with pytest.raises(UrlError) as err:
        await checked_addresses(target, allow_private=False)
    assert err.value.reason == "loopback"
    assert err.value.address in {"127.0.0.1", "::1"}
    addrs = await checked_addresses(target, allow_private=True)
    assert ipaddress.ip_address("127.0.0.1") in addrs
