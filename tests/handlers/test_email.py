"""The built-in `email.send` type against a real SMTP server (aiosmtpd on a free port) and a
real Worker on the real Redis broker: content and headers, retries on 4xx and lost
connections, DEAD on 5xx, and payload validation at enqueue."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import ErrorCode, JobError, PermanentError, ValidationError
from conveyor.handlers import Registry, default_registry
from conveyor.handlers.email import EMAIL_TYPE, EmailPayload, classify, message_id
from conveyor.ids import split_job_id
from conveyor.jobs import Job, JobState
from conveyor.retry import ExponentialBackoff, FixedBackoff, RetryPolicy
from conveyor.settings import Settings, get_settings
from conveyor.worker import Worker
from tests.support.asgi import serve
from tests.support.env import REDIS_URL
from tests.support.inproc import make_settings, redis_broker, running
from tests.support.waits import wait_for_state

QUEUE = "mail"
SENDER = "robot@sender.example.com"
DONE = {JobState.SUCCEEDED, JobState.DEAD}


# --- the SMTP server --------------------------------------------------------------------------


@dataclass
class ScriptedSMTP:
    """aiosmtpd handler: answers RCPT and DATA from scripts (default 250), records messages.

    `data_seen` holds every DATA body, refused or not, so tests can compare redeliveries.
    """

    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    data_seen: list[EmailMessage] = field(default_factory=list)
    delivered: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.popleft() if self.rcpt_replies else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.data_seen.append(msg)
        reply = self.data_replies.popleft() if self.data_replies else "250 Message accepted"
        if reply.startswith("250"):
            assert envelope.mail_from is not None
            self.delivered.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return reply


@asynccontextmanager
async def smtp_server(handler: ScriptedSMTP, **smtp_kw: Any) -> AsyncIterator[int]:
    """Serve `handler` on 127.0.0.1, on a port the OS picks; yields the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp.test.local", loop=loop, **smtp_kw), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def smtp_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the handler's settings (CONVEYOR_SMTP_*) at a test server."""

    def configure(port: int, **extra: str) -> None:
        monkeypatch.setenv("CONVEYOR_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CONVEYOR_SMTP_PORT", str(port))
        monkeypatch.setenv("CONVEYOR_SMTP_TIMEOUT_S", "5")
        for name, value in extra.items():
            monkeypatch.setenv(f"CONVEYOR_SMTP_{name.upper()}", value)
        get_settings.cache_clear()

    for name in ("FROM", "USERNAME", "PASSWORD", "TLS", "STARTTLS"):
        monkeypatch.delenv(f"CONVEYOR_SMTP_{name}", raising=False)
    get_settings.cache_clear()
    yield configure
    get_settings.cache_clear()


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[RedisBroker]:
    async with redis_broker(prefix) as b:
        yield b


@pytest.fixture
def registry() -> Registry:
    """The real `email.send` spec with a fast backoff, so retries take milliseconds."""
    reg = Registry()
    spec = default_registry.get(EMAIL_TYPE)
    reg.register(dataclasses.replace(spec, retry=RetryPolicy(5, FixedBackoff(0.01))))
    return reg


@pytest.fixture
def client(broker: RedisBroker, registry: Registry) -> AsyncConveyor:
    return AsyncConveyor(broker, registry=registry)


RunWorker = Callable[[], Any]


@pytest.fixture
def run_worker(broker: RedisBroker, registry: Registry) -> RunWorker:
    def _run() -> AbstractAsyncContextManager[Worker]:
        worker = Worker(broker, queues=[QUEUE], concurrency=2, registry=registry,
                        settings=make_settings(lease_s=10.0))
        return running(worker)

    return _run


async def run_one(
    client: AsyncConveyor, run_worker: RunWorker, payload: dict[str, Any], **kw: Any
) -> Job:
    job = await client.enqueue(EMAIL_TYPE, payload, queue=QUEUE, **kw)
    async with run_worker():
        return await wait_for_state(client, job.id, DONE)


def mail(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "to": "alice@example.com",
        "from": SENDER,
        "subject": "Hello",
        "text": "plain body",
    }
    body.update(overrides)
    return body


# --- delivery ---------------------------------------------------------------------------------


async def test_message_is_delivered_with_its_headers_and_both_bodies(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    smtp = ScriptedSMTP()
    async with smtp_server(smtp) as port:
        smtp_env(port)
        done = await run_one(
            client,
            run_worker,
            mail(
                to=["alice@example.com", "bob@example.com"],
                cc="carol@example.com",
                bcc=["hidden@example.com"],
                reply_to="support@sender.example.com",
                subject="Your report — ready",
                text="plain body",
                html="<p>html body</p>",
                headers={"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
            ),
        )
    assert done.state is JobState.SUCCEEDED, done.last_error
    assert done.attempts == 1

    assert len(smtp.delivered) == 1
    mail_from, rcpt_tos, msg = smtp.delivered[0]
    assert mail_from == SENDER
    assert sorted(rcpt_tos) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "hidden@example.com",
    ]
    assert msg["Subject"] == "Your report — ready"
    assert msg["From"] == SENDER
    assert msg["To"] == "alice@example.com, bob@example.com"
    assert msg["Cc"] == "carol@example.com"
    assert msg["Reply-To"] == "support@sender.example.com"
    assert msg["Bcc"] is None
    assert "hidden@example.com" not in msg.as_string()
    assert msg["X-Campaign"] == "spring"
    assert msg["List-Unsubscribe"] == "<mailto:u@example.com>"
    assert msg["Date"] is not None and msg["Date"].datetime is not None

    queue, uid = split_job_id(done.id)
    assert msg["Message-ID"] == f"<{uid}.{queue}@sender.example.com>"
    assert isinstance(done.result, dict)
    assert done.result["message_id"] == msg["Message-ID"]

    assert msg.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part for part in msg.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert isinstance(parts["text/plain"], EmailMessage)
    assert isinstance(parts["text/html"], EmailMessage)
    assert parts["text/plain"].get_content().strip() == "plain body"
    assert parts["text/html"].get_content().strip() == "<p>html body</p>"


async def test_single_body_is_not_multipart_and_sender_defaults_to_setting(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    smtp = ScriptedSMTP()
    async with smtp_server(smtp) as port:
        smtp_env(port, FROM="noreply@default.example.org")
        payload = mail(html="<b>only html</b>")
        del payload["from"], payload["text"]
        done = await run_one(client, run_worker, payload)
    assert done.state is JobState.SUCCEEDED, done.last_error
    mail_from, _, msg = smtp.delivered[0]
    assert mail_from == "noreply@default.example.org"
    assert msg["From"] == "noreply@default.example.org"
    assert msg["Message-ID"].endswith("@default.example.org>")
    assert msg.get_content_type() == "text/html"
    assert msg.get_content().strip() == "<b>only html</b>"


async def test_451_then_250_succeeds_on_the_second_attempt_with_the_same_message_id(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    smtp = ScriptedSMTP(data_replies=deque(["451 4.3.0 Try again later"]))
    async with smtp_server(smtp) as port:
        smtp_env(port)
        done = await run_one(client, run_worker, mail())
    assert done.state is JobState.SUCCEEDED, done.last_error
    assert done.attempts == 2
    failed = [h for h in done.history if h.error_code is not None]
    assert [(h.attempt, h.error_code) for h in failed] == [(1, "smtp_transient")]
    assert "451" in (failed[0].message or "")
    assert "Try again later" in (failed[0].message or "")
    assert len(smtp.delivered) == 1
    ids = [m["Message-ID"] for m in smtp.data_seen]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert ids[0] == message_id(done.id, SENDER)


@pytest.mark.parametrize("stage", ["rcpt", "data"])
async def test_550_goes_dead_at_once_with_the_server_reply(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None], stage: str
) -> None:
    reply = "550 5.1.1 <alice@example.com>: Recipient address rejected: User unknown"
    smtp = ScriptedSMTP()
    (smtp.rcpt_replies if stage == "rcpt" else smtp.data_replies).append(reply)
    async with smtp_server(smtp) as port:
        smtp_env(port)
        done = await run_one(client, run_worker, mail())
    assert done.state is JobState.DEAD
    assert done.attempts == 1
    assert done.last_error is not None
    assert done.last_error.code == "smtp_permanent"
    assert "550" in done.last_error.message
    assert "Recipient address rejected: User unknown" in done.last_error.message
    assert smtp.delivered == []


async def test_partly_refused_recipients_succeed_without_a_duplicate_retry(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    smtp = ScriptedSMTP(rcpt_replies=deque(["250 OK", "550 5.1.1 no such user"]))
    async with smtp_server(smtp) as port:
        smtp_env(port)
        done = await run_one(client, run_worker, mail(to=["a@example.com", "b@example.com"]))
    assert done.state is JobState.SUCCEEDED, done.last_error
    assert done.attempts == 1
    assert [rcpts for _, rcpts, _ in smtp.delivered] == [["a@example.com"]]
    assert isinstance(done.result, dict)
    assert done.result["refused"] == {"b@example.com": "550 5.1.1 no such user"}


async def test_auth_failure_goes_dead_as_permanent(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    def refuse(*args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    smtp = ScriptedSMTP()
    async with smtp_server(smtp, authenticator=refuse, auth_require_tls=False) as port:
        smtp_env(port, USERNAME="robot", PASSWORD="wrong")
        done = await run_one(client, run_worker, mail())
    assert done.state is JobState.DEAD
    assert done.attempts == 1
    assert done.last_error is not None
    assert done.last_error.code == "smtp_permanent"
    assert "535" in done.last_error.message
    assert smtp.data_seen == []


async def test_connection_refused_is_transient_and_retried(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    # A bound socket that never listens: connects are refused and no one else takes the port.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        smtp_env(hole.getsockname()[1])
        done = await run_one(client, run_worker, mail(), max_attempts=2)
    assert done.state is JobState.DEAD
    assert done.attempts == 2
    codes = [h.error_code for h in done.history if h.error_code is not None]
    assert codes == ["smtp_transient", "smtp_transient"]
    assert done.last_error is not None and done.last_error.code == "smtp_transient"


async def test_silent_server_times_out_as_transient(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never sends the 220 greeting
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        smtp_env(server.sockets[0].getsockname()[1], TIMEOUT_S="0.2")
        done = await run_one(client, run_worker, mail(), max_attempts=1)
    finally:
        server.close()
        await server.wait_closed()
    assert done.state is JobState.DEAD
    assert done.last_error is not None
    assert done.last_error.code == "smtp_transient"
    assert "Timeout" in done.last_error.message


# --- classification without a server ---------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (
            aiosmtplib.SMTPSenderRefused(553, "sender rejected", "a@b.c"),
            PermanentError,
            ErrorCode.SMTP_PERMANENT,
        ),
        (
            aiosmtplib.SMTPSenderRefused(450, "mailbox busy", "a@b.c"),
            JobError,
            ErrorCode.SMTP_TRANSIENT,
        ),
        (
            aiosmtplib.SMTPAuthenticationError(454, "temporary auth failure"),
            JobError,
            ErrorCode.SMTP_TRANSIENT,
        ),
        (
            aiosmtplib.SMTPConnectResponseError(554, "no service"),
            PermanentError,
            ErrorCode.SMTP_PERMANENT,
        ),
        (aiosmtplib.SMTPResponseException(421, "closing"), JobError, ErrorCode.SMTP_TRANSIENT),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "unknown", "a@b.c"),
                    aiosmtplib.SMTPRecipientRefused(452, "mailbox full", "d@e.f"),
                ]
            ),
            JobError,
            ErrorCode.SMTP_TRANSIENT,
        ),
        (aiosmtplib.SMTPServerDisconnected("gone"), JobError, ErrorCode.SMTP_TRANSIENT),
        (
            aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"),
            PermanentError,
            ErrorCode.SMTP_PERMANENT,
        ),
        (ConnectionResetError("reset"), JobError, ErrorCode.SMTP_TRANSIENT),
    ],
)
def test_classify(exc: Exception, kind: type[Exception], code: str) -> None:
    err = classify(exc)
    assert type(err) is kind
    assert err.code == code


def test_default_spec_retries_five_times_with_capped_exponential_backoff() -> None:
    spec = default_registry.get(EMAIL_TYPE)
    assert spec.payload_model is EmailPayload
    assert spec.retry.max_attempts == 5
    assert spec.retry.backoff == ExponentialBackoff(base_s=1.0, cap_s=60.0)


# --- validation at enqueue --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"to": "not-an-address"}, "to"),
        ({"to": []}, "to"),
        ({"cc": ["ok@example.com", "broken@"]}, "cc"),
        ({"from": "nobody"}, "from"),
        ({"text": None}, "text or html"),
        ({"text": "", "html": ""}, "text or html"),
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"subject": "Hi\nthere"}, "subject"),
        ({"headers": {"Bcc": "victim@example.com"}}, "Bcc"),
        ({"headers": {"message-id": "<forged@x>"}}, "message-id"),
        ({"headers": {"Content-Type": "text/evil"}}, "Content-Type"),
        ({"headers": {"X Bad": "v"}}, "X Bad"),
        ({"headers": {"X-Ok": "v\r\nBcc: victim@example.com"}}, "X-Ok"),
        ({"unknown": 1}, "unknown"),
        ({"from_": SENDER}, "from_"),
    ],
)
async def test_invalid_payload_is_refused_at_enqueue_and_nothing_is_stored(
    client: AsyncConveyor,
    broker: RedisBroker,
    smtp_env: Callable[..., None],
    overrides: dict[str, Any],
    needle: str,
) -> None:
    smtp_env(1)
    with pytest.raises(ValidationError) as info:
        await client.enqueue(EMAIL_TYPE, mail(**overrides), queue=QUEUE)
    assert info.value.code == "validation_error"
    assert needle in str(info.value.details)
    assert [k async for k in broker.client.scan_iter(match=f"{broker_prefix(broker)}:*")] == []


async def test_the_default_sender_is_the_workers_setting_not_the_producers(
    client: AsyncConveyor, broker: RedisBroker, run_worker: RunWorker,
    smtp_env: Callable[..., None],
) -> None:
    """An API or producer without CONVEYOR_SMTP_FROM (or with a broken one) accepts an email
    without `from`; the worker that sends it applies its own sender. Today the producer's
    environment is checked at enqueue: 422 for every such email."""
    payload = mail()
    del payload["from"]
    smtp_env(1)  # the producer: no CONVEYOR_SMTP_FROM at all
    first = await client.enqueue(EMAIL_TYPE, payload, queue=QUEUE)
    smtp_env(1, FROM="not an address")
    second = await client.enqueue(EMAIL_TYPE, payload, queue=QUEUE)
    assert isinstance(first.payload, dict) and first.payload["from"] is None
    smtp = ScriptedSMTP()
    async with smtp_server(smtp) as port:
        smtp_env(port, FROM="worker-sender@example.com")  # the worker's environment
        async with run_worker():
            done = [await wait_for_state(client, j.id, DONE) for j in (first, second)]
    assert [j.state for j in done] == [JobState.SUCCEEDED] * 2, done[0].last_error
    assert [m[0] for m in smtp.delivered] == ["worker-sender@example.com"] * 2


async def test_an_api_without_a_sender_accepts_an_email_without_from(
    broker: RedisBroker, smtp_env: Callable[..., None]
) -> None:
    """POST /v1/jobs on an API process whose environment has no CONVEYOR_SMTP_FROM."""

    from conveyor.web import create_app

    smtp_env(1)
    payload = mail()
    del payload["from"]
    api_client = AsyncConveyor(broker)
    app = create_app(api_client, Settings(broker_url=REDIS_URL, key_prefix=broker.keys.prefix))
    async with serve(app) as http:
        reply = await http.post(
            "/v1/jobs", json={"type": EMAIL_TYPE, "payload": payload, "queue": QUEUE}
        )
    assert reply.status_code == 201, reply.text
    assert reply.json()["payload"]["from"] is None


async def test_a_worker_without_a_sender_fails_the_email_saying_so(
    client: AsyncConveyor, run_worker: RunWorker, smtp_env: Callable[..., None]
) -> None:
    payload = mail()
    del payload["from"]
    smtp_env(1)
    async with run_worker() as worker:
        job = await client.enqueue(EMAIL_TYPE, payload, queue=QUEUE)
        done = await wait_for_state(client, job.id, DONE)
    assert (done.state, done.attempts) == (JobState.DEAD, 1)
    assert done.last_error is not None and done.last_error.code == "validation_error"
    assert "CONVEYOR_SMTP_FROM" in done.last_error.message
    assert worker.worker_id in done.last_error.message


def test_stored_payload_is_normalised_and_uses_the_from_key() -> None:
    stored = default_registry.get(EMAIL_TYPE).validate_payload(mail(to="Alice@EXAMPLE.com"))
    assert stored["to"] == ["Alice@example.com"]
    assert stored["from"] == SENDER
    assert "from_" not in stored
    assert EmailPayload.model_validate_json(json.dumps(stored)).from_ == SENDER


def test_settings_refuse_tls_and_starttls_together() -> None:
    with pytest.raises(Exception, match="not both"):
        Settings(smtp_tls=True, smtp_starttls=True)
    with pytest.raises(Exception, match="smtp_port"):
        Settings(smtp_port=70000)


def broker_prefix(broker: RedisBroker) -> str:
    prefix = broker.keys.prefix
    assert prefix.startswith("cvt-")
    return prefix
