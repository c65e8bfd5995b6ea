"""Settings read from `CONVEYOR_*` environment variables. Durations are seconds (floats)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.origins import normalize_origin
from conveyor.queues import QUEUE_NAME_RE

#: The embedded default: one SQLite file in the working directory, nothing else to run.
DEFAULT_BROKER_URL = "sqlite:///conveyor.db"
#: an IPv4 / IPv6 address or a DNS name (what a listening socket can bind)
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+$")


#: the longest default gap between heartbeats: how late a worker learns of a cancel request
CANCEL_NOTICE_S = 5.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    broker_url: str = Field(default=DEFAULT_BROKER_URL, min_length=1)
    key_prefix: str = Field(default="cv", pattern=r"^[A-Za-z0-9_.-]{1,32}$")

    lease_s: PositiveFloat = 30.0
    heartbeat_interval_s: PositiveFloat | None = None
    reap_interval_s: PositiveFloat = 1.0
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    worker_ttl_s: PositiveFloat = 15.0

    retention_s: PositiveFloat = 24 * 3600.0
    dlq_retention_s: PositiveFloat = 30 * 24 * 3600.0
    queue_retention_s: dict[str, PositiveFloat] = Field(default_factory=dict)

    #: Redis socket, connect and pool-wait timeout: a stalled Redis fails a call after this
    redis_timeout_s: PositiveFloat = 3.0
    #: how often a running process re-checks Redis' maxmemory-policy (and on reconnect)
    redis_check_interval_s: PositiveFloat = 30.0
    #: enqueue, outcomes and operator transitions wait (`WAIT`) until this many replicas
    #: have the write before answering; 0: answer once the primary has it
    redis_wait_replicas: int = Field(default=0, ge=0, le=16)
    #: how long such a write waits for its replicas; past it the call fails (503)
    redis_wait_timeout_ms: PositiveInt = 1000

    concurrency: PositiveInt = 10
    #: largest result (its JSON text) a worker sends; over it the job fails `result_too_large`
    max_result_bytes: PositiveInt = 1048576
    #: warn when a handler holds the worker's event loop longer than this; 0: never
    loop_block_warn_s: float = Field(default=1.0, ge=0)
    #: worker metrics (Prometheus) on this port; None: off; 0: a free port, shown in the
    #: worker registry (`metrics_url`). Bound to worker_metrics_host, loopback by default.
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: auto: coloured text on a terminal, JSON otherwise
    log_format: Literal["auto", "json", "text"] = "auto"

    #: comma-separated bearer keys of the HTTP API; empty: no auth (a warning at start)
    api_keys: str = ""
    max_body_bytes: PositiveInt = 1048576
    #: comma-separated origins (`https://ops.example`) whose pages may change state through
    #: the API besides its own; a browser request from any other origin gets 403
    allowed_origins: str = ""
    #: largest request line + headers the API reads (431 above); a request must arrive whole
    #: (headers and body) within request_read_timeout_s of its first byte (408 after)
    max_header_bytes: int = Field(default=32768, ge=1024, le=1048576)
    request_read_timeout_s: PositiveFloat = 15.0

    # SMTP for the built-in `email.send` type. smtp_tls is implicit TLS (port 465);
    # smtp_starttls upgrades a plain connection (port 587). At most one of them.
    smtp_host: str = Field(default="localhost", min_length=1)
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout_s: PositiveFloat = 30.0
    smtp_from: str | None = None

    # Webhook deliveries (the `conveyor.webhook` job type, in queue webhook_queue). Private,
    # loopback, link-local and reserved addresses are refused, at subscribe time and after
    # DNS at every delivery, unless webhook_allow_private. A retry waits Retry-After or the
    # exponential backoff (full jitter) of base and cap, over webhook_max_attempts attempts.
    webhook_queue: str = Field(default="webhooks", pattern=QUEUE_NAME_RE.pattern)
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    webhook_retry_base_s: float = Field(default=30.0, ge=0, le=86400)
    webhook_retry_cap_s: float = Field(default=21600.0, ge=0, le=86400)

    #: events each queue's event log keeps (about: trimmed in steps); 0 turns events off
    events_maxlen: int = Field(default=100_000, ge=0, le=100_000_000)

    @field_validator("queue_retention_s")
    @classmethod
    def _queue_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not QUEUE_NAME_RE.fullmatch(name):
                raise ValueError(f"invalid queue name {name!r}")
        return value

    @field_validator("worker_metrics_host")
    @classmethod
    def _metrics_host(cls, value: str) -> str:
        if not _HOST_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not an IP address or host name")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            if normalize_origin(origin) is None:
                raise ValueError(f"CONVEYOR_ALLOWED_ORIGINS: {origin!r} is not an origin "
                                 "(scheme://host[:port], http or https, no path)")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> Settings:
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("set CONVEYOR_SMTP_TLS or CONVEYOR_SMTP_STARTTLS, not both")
        return self

    @property
    def heartbeat_s(self) -> float:
        """Heartbeats run well inside the lease: a third of it unless set, and at most
        CANCEL_NOTICE_S apart, since a running job's cancel request reaches its worker with
        the next heartbeat's reply."""
        return self.heartbeat_interval_s or min(self.lease_s / 3, CANCEL_NOTICE_S)

    def retention_for(self, queue: str) -> float:
        return self.queue_retention_s.get(queue, self.retention_s)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
