"""The SSRF rules at delivery time, through a real worker on both brokers: the address is
checked again after DNS (a name that changed its answer since it was subscribed is refused),
the connection goes to the checked address (never a second lookup), and the Host header and
TLS certificate check keep the name. Names under `.example` are reserved and never resolve:
the test's resolver stands in for DNS, and a request that reaches the receiver can only have
gone to the address it returned.
"""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.jobs import JobState
from conveyor.webhooks.model import Subscription, SubscriptionSpec
from conveyor.webhooks.signing import generate_secret
from conveyor.webhooks.store import WebhookStore, subscribe
from conveyor.webhooks.urls import IPAddress, WebhookUrlError
from tests.support.typed import as_dict
from tests.webhooks.spec_verifier import verify
from tests.webhooks.webhook_receiver import Receiver, always
from tests.webhooks.webhook_support import Hooks, webhook_settings

StartReceiver = Callable[..., Receiver]


class Dns:
    """A resolver with a table the test changes; counts the lookups it answers."""

    def __init__(self, **table: list[str]) -> None:
        self.table = {name.replace("_", "."): addrs for name, addrs in table.items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(-2, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.table[host]]


async def _store_unchecked(store: WebhookStore, url: str) -> Subscription:
    """A subscription stored without subscribe's checks (as one made while the rules were
    laxer, or by hand): only the delivery-time check stands between it and the address."""
    spec = SubscriptionSpec(url=url, events=["job.succeeded"])
    return await store.create(spec, sub_id="wh_" + "ab" * 16, secret=generate_secret())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_loopback_is_refused_at_delivery_without_the_flag(hooks: Hooks, host: str) -> None:
    rx = hooks.receiver(always(200))
    strict = webhook_settings(webhook_allow_private=False)
    hooks.configure(settings=strict)
    sub = await _store_unchecked(hooks.store, rx.url(host=host))
    job = await hooks.deliver_one(sub, webhook_allow_private=False)
    assert job.state == JobState.DEAD and job.attempts == 1  # no retry can help
    assert job.last_error is not None and job.last_error.code == "webhook_address_refused"
    assert "loopback" in job.last_error.message and "ALLOW_PRIVATE" in job.last_error.message
    assert rx.snapshot() == []


async def test_localhost_is_delivered_to_with_the_flag(hooks: Hooks) -> None:
    rx = hooks.receiver(always(200))
    url = rx.url(host="localhost")
    sub = await subscribe(hooks.store, SubscriptionSpec(url=url, events=["job.succeeded"]),
                          settings=webhook_settings())  # the system resolver, both times
    job = await hooks.deliver_one(sub)
    assert job.state == JobState.SUCCEEDED, job.last_error
    [hit] = rx.snapshot()
    assert hit.headers["host"] == f"localhost:{rx.port}"


async def test_a_name_that_rebinds_to_loopback_after_subscribing_is_refused(hooks: Hooks) -> None:
    rx = hooks.receiver(always(200))
    dns = Dns(hooks_example=["93.184.216.34"])  # a public answer at subscribe time
    strict = webhook_settings(webhook_allow_private=False)
    url = rx.url(host="hooks.example")
    sub = await subscribe(hooks.store, SubscriptionSpec(url=url, events=["job.succeeded"]),
                          settings=strict, resolver=dns)
    dns.table["hooks.example"] = ["127.0.0.1"]  # ... and the loopback by delivery time
    hooks.configure(settings=strict, resolver=dns)
    job = await hooks.deliver_one(sub, webhook_allow_private=False)
    assert job.state == JobState.DEAD
    assert job.last_error is not None and job.last_error.code == "webhook_address_refused"
    assert "'hooks.example' resolves to 127.0.0.1" in job.last_error.message
    assert rx.snapshot() == []
    with pytest.raises(WebhookUrlError) as err:  # and a new subscription is refused now
        await subscribe(hooks.store, SubscriptionSpec(url=url, events=["job.dead"]),
                        settings=strict, resolver=dns)
    assert err.value.reason == "loopback"


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    hooks: Hooks,
) -> None:
    rx = hooks.receiver(always(204))
    # ::1 first: nothing listens there for this port, so the worker moves to the next one
    dns = Dns(hooks_example=["::1", "127.0.0.1"])
    hooks.configure(resolver=dns)
    sub = await subscribe(hooks.store, SubscriptionSpec(url=rx.url("/in?k=v", host="hooks.example"),
                                                  events=["job.succeeded"]),
                          settings=webhook_settings(), resolver=dns)
    job = await hooks.deliver_one(sub)
    assert job.state == JobState.SUCCEEDED, job.last_error
    assert as_dict(job.result)["address"] == "127.0.0.1" and as_dict(job.result)["status"] == 204
    [hit] = rx.snapshot()
    assert hit.headers["host"] == f"hooks.example:{rx.port}" and hit.path == "/in?k=v"
    verify(sub.secret.get_secret_value(), hit.body, hit.headers)
    assert dns.lookups == ["hooks.example", "hooks.example"]  # subscribe, then delivery once


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a certificate for hooks.example it signed (openssl)."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=conveyor test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=hooks.example")
    (d / "ext.cnf").write_text("subjectAltName=DNS:hooks.example\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": d / "ca.pem", "cert": d / "leaf.pem", "key": d / "leaf.key"}


def _tls_receiver(receiver: StartReceiver, files: dict[str, Path]) -> Receiver:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files["cert"], files["key"])
    return receiver(always(200), tls=server)


async def test_https_checks_the_certificate_against_the_name(
    hooks: Hooks, tls_files: dict[str, Path]
) -> None:
    rx = _tls_receiver(hooks.receiver, tls_files)
    dns = Dns(hooks_example=["127.0.0.1"], other_example=["127.0.0.1"])
    hooks.configure(resolver=dns, verify=ssl.create_default_context(cafile=str(tls_files["ca"])))
    good = await _store_unchecked(hooks.store, rx.url(host="hooks.example"))
    job = await hooks.deliver_one(good)
    assert job.state == JobState.SUCCEEDED, job.last_error
    [hit] = rx.snapshot()
    assert hit.headers["host"] == f"hooks.example:{rx.port}"
    verify(good.secret.get_secret_value(), hit.body, hit.headers)


async def test_https_refuses_a_certificate_for_another_name(
    hooks: Hooks, tls_files: dict[str, Path]
) -> None:
    rx = _tls_receiver(hooks.receiver, tls_files)
    dns = Dns(other_example=["127.0.0.1"])  # same server, but not the name its cert names
    cfg = webhook_settings(webhook_max_attempts=1)
    hooks.configure(settings=cfg, resolver=dns,
              verify=ssl.create_default_context(cafile=str(tls_files["ca"])))
    wrong = await _store_unchecked(hooks.store, rx.url(host="other.example"))
    job = await hooks.deliver_one(wrong, webhook_max_attempts=1)
    assert job.state == JobState.DEAD
    assert job.last_error is not None and job.last_error.code == "webhook_unreachable"
    assert "certificate" in job.last_error.message.lower()
    assert rx.snapshot() == []
