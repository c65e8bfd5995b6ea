"""The built-in `email.send` job type (the seed's email.handler): a validated payload, a MIME
message whose Message-ID comes from the job id, SMTP via aiosmtplib, and failures sorted into
"retry" (`smtp_transient`) and "dead at once" (`smtp_permanent`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Annotated, Any, Self

import aiosmtplib
import email_validator
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from conveyor.errors import ConveyorError, ErrorCode, JobError, PermanentError
from conveyor.handlers.context import JobContext
from conveyor.handlers.registry import handler
from conveyor.ids import split_job_id
from conveyor.retry import ExponentialBackoff
from conveyor.settings import Settings, get_settings

EMAIL_TYPE = "email.send"
MAX_RECIPIENTS = 100
"""RFC 5321 only promises 100 RCPTs per message; beyond that a server may 452 forever."""
MAX_HEADER_LEN = 998
MAX_EXTRA_HEADERS = 50

HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,76}$")
# Every character str.splitlines() breaks on, and NUL: any of them in a header is an injection.
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# Set by this module; letting the payload override them would forge or break the message.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "message-id",
        "subject",
        "date",
        "reply-to",
        "sender",
        "mime-version",
    }
)

_address = TypeAdapter(EmailStr)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Addresses = Annotated[list[EmailStr], BeforeValidator(
    _as_list, json_schema_input_type=EmailStr | list[EmailStr])]
"""One address or a list of them; stored as a list."""


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)  # a-z, -


#: The payload's rules that pydantic's schema cannot see (the validators below), stated in
#: its JSON schema, so the API document promises exactly what the validators accept.
_ONE_LINE = "^[^" + "".join(f"\\u{ord(c):04x}" for c in sorted(_LINE_BREAKS)) + "]*$"
_RESERVED = "^(?:" + "|".join(
    [_any_case(h) for h in sorted(RESERVED_HEADERS)] + [_any_case("content-") + ".*"]) + ")$"
_NO_TEXT = {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0}]}
_SCHEMA_RULES: dict[str, Any] = {
    "not": {"properties": {"text": _NO_TEXT, "html": _NO_TEXT}},  # neither text nor html
    "description": "An email. At least one of `text` and `html`; at most "
    f"{MAX_RECIPIENTS} recipients (to + cc + bcc); `from` may be left out: the sending worker "
    "then uses its CONVEYOR_SMTP_FROM.",
}


#: email-validator refuses addresses at special-use domains (`x@host.test`)
_SPECIAL_DOMAIN = {"pattern": "[@.](?:" + "|".join(
    _any_case(d) for d in sorted(email_validator.SPECIAL_USE_DOMAIN_NAMES)) + ")$"}


def _addresses_deliverable(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") == "email":
            node["not"] = _SPECIAL_DOMAIN
        for value in node.values():
            _addresses_deliverable(value)
    elif isinstance(node, list):
        for value in node:
            _addresses_deliverable(value)


def _state_rules(schema: dict[str, Any]) -> None:
    schema.update(_SCHEMA_RULES)
    props = schema["properties"]
    _addresses_deliverable(props)
    props["to"]["anyOf"][1]["minItems"] = 1
    props["subject"]["pattern"] = _ONE_LINE
    props["headers"]["propertyNames"] = {"pattern": HEADER_NAME_RE.pattern,
                                         "not": {"pattern": _RESERVED}}
    props["headers"]["additionalProperties"] = {"type": "string", "maxLength": MAX_HEADER_LEN,
                                                "pattern": _ONE_LINE}


def _check_line(value: str, what: str) -> str:
    if any(ch in _LINE_BREAKS for ch in value):
        raise ValueError(f"{what} must not contain line breaks or NUL")
    return value


class EmailPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True,
                              json_schema_extra=_state_rules)

    to: Addresses = Field(min_length=1)
    cc: Addresses = Field(default_factory=list)
    bcc: Addresses = Field(default_factory=list)
    from_: EmailStr | None = Field(default=None, alias="from")
    """Defaults to the sending worker's CONVEYOR_SMTP_FROM (applied when it sends)."""
    reply_to: Addresses = Field(default_factory=list)
    subject: str = Field(max_length=MAX_HEADER_LEN)
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_EXTRA_HEADERS)

    @field_validator("subject")
    @classmethod
    def _subject_one_line(cls, value: str) -> str:
        return _check_line(value, "subject")

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not HEADER_NAME_RE.fullmatch(name):
                raise ValueError(f"header name {name!r} must be 1-76 of A-Z a-z 0-9 -")
            lower = name.lower()
            if lower in RESERVED_HEADERS or lower.startswith("content-"):
                raise ValueError(f"header {name!r} is set by conveyor and cannot be overridden")
            if len(text) > MAX_HEADER_LEN:
                raise ValueError(f"header {name!r} is longer than {MAX_HEADER_LEN} characters")
            _check_line(text, f"header {name!r}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.text and not self.html:
            raise ValueError("at least one of text or html is required")
        if len(self.envelope_recipients()) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients (to + cc + bcc)")
        # No default sender check here: the producer's (or API's) environment is not the
        # worker's. The worker that sends applies its own CONVEYOR_SMTP_FROM (see deliver).
        return self

    def envelope_recipients(self) -> list[str]:
        """to + cc + bcc, each once: the RCPT TO list (bcc lives only here)."""
        return list(dict.fromkeys([*self.to, *self.cc, *self.bcc]))


def default_sender(settings: Settings) -> str:
    """CONVEYOR_SMTP_FROM, validated; ValueError when it is unset or not an address."""
    if settings.smtp_from is None:
        raise ValueError("'from' is required when CONVEYOR_SMTP_FROM is not set")
    try:
        return _address.validate_python(settings.smtp_from)
    except PydanticValidationError as exc:
        raise ValueError(f"CONVEYOR_SMTP_FROM is not a valid address: {exc}") from None


def message_id(job_id: str, sender: str) -> str:
    """`<uid.queue@sender-domain>`: the same for every delivery of a job, so a receiver can
    drop the duplicate an at-least-once redelivery may send."""
    queue, uid = split_job_id(job_id)
    domain = email_validator.validate_email(sender, check_deliverability=False).ascii_domain
    queue_atom = re.sub(r"\.+", ".", queue).strip(".")  # a dot-atom has no empty parts
    left = f"{uid}.{queue_atom}" if queue_atom else uid
    return f"<{left}@{domain}>"


def build_message(payload: EmailPayload, *, sender: str, msg_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(payload.to)
    if payload.cc:
        msg["Cc"] = ", ".join(payload.cc)
    if payload.reply_to:
        msg["Reply-To"] = ", ".join(payload.reply_to)
    msg["Subject"] = payload.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = msg_id
    for name, value in payload.headers.items():
        msg[name] = value
    if payload.text and payload.html:
        msg.set_content(payload.text)
        msg.add_alternative(payload.html, subtype="html")
    elif payload.html:
        msg.set_content(payload.html, subtype="html")
    else:
        msg.set_content(payload.text or "")
    return msg


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def _by_code(code: int, text: str) -> ConveyorError:
    if 500 <= code <= 599:
        return PermanentError(text, code=ErrorCode.SMTP_PERMANENT)
    return JobError(text, code=ErrorCode.SMTP_TRANSIENT)


def classify(exc: Exception) -> ConveyorError:
    """5xx replies cannot succeed on a retry; 4xx, lost connections and timeouts may."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = "; ".join(f"{r.recipient}: {_reply(r.code, r.message)}" for r in exc.recipients)
        # Nothing was accepted, so a retry duplicates nothing: retry unless every refusal is 5xx.
        permanent = bool(exc.recipients) and all(500 <= r.code <= 599 for r in exc.recipients)
        return _by_code(550 if permanent else 450, f"all recipients refused: {refusals}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # before ConnectError: 554 greeting
        what = {
            aiosmtplib.SMTPSenderRefused: "sender refused",
            aiosmtplib.SMTPRecipientRefused: "recipient refused",
            aiosmtplib.SMTPDataError: "message refused",
            aiosmtplib.SMTPAuthenticationError: "authentication failed",
            aiosmtplib.SMTPHeloError: "EHLO refused",
        }.get(type(exc), "SMTP error")
        return _by_code(exc.code, f"{what}: {_reply(exc.code, exc.message)}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):  # e.g. STARTTLS or AUTH not offered
        return PermanentError(f"SMTP server: {exc.message}", code=ErrorCode.SMTP_PERMANENT)
    reason = exc.message if isinstance(exc, aiosmtplib.SMTPException) else str(exc)
    return JobError(
        f"SMTP {type(exc).__name__}: {reason or 'no detail'}", code=ErrorCode.SMTP_TRANSIENT
    )


async def deliver(payload: EmailPayload, ctx: JobContext, settings: Settings) -> dict[str, Any]:
    """Send one message; returns the job result (Message-ID and any refused recipients)."""
    try:
        sender = payload.from_ or default_sender(settings)
    except ValueError as exc:  # a worker setting, so say which worker
        raise PermanentError(
            f"no sender: the payload has no 'from' and worker {ctx.worker_id} has no usable "
            f"default ({exc})", code=ErrorCode.VALIDATION_ERROR,
        ) from exc
    try:
        msg_id = message_id(ctx.job_id, sender)
        msg = build_message(payload, sender=sender, msg_id=msg_id)
    except ValueError as exc:  # a header or address the email library refuses
        raise PermanentError(
            f"cannot build the message: {exc}", code=ErrorCode.VALIDATION_ERROR
        ) from exc
    password = settings.smtp_password
    try:
        refused, reply = await aiosmtplib.send(
            msg,
            sender=sender,
            recipients=payload.envelope_recipients(),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise classify(exc) from exc
    # Some recipients refused, others accepted: retrying would duplicate the accepted ones.
    refusals = {addr: _reply(r.code, r.message) for addr, r in refused.items()}
    if refusals:
        ctx.logger.warning("email_partly_refused", extra={"refused": refusals})
    ctx.logger.info("email_sent", extra={"message_id": msg_id})
    return {"message_id": msg_id, "reply": reply, "refused": refusals}


@handler(
    EMAIL_TYPE,
    payload=EmailPayload,
    max_attempts=5,
    backoff=ExponentialBackoff(base_s=1.0, cap_s=60.0),
)
async def send_email(payload: EmailPayload, ctx: JobContext) -> dict[str, Any]:
    return await deliver(payload, ctx, get_settings())
