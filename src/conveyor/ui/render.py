"""Template rendering of the dashboard: one Jinja2 environment with autoescape on for every
template (job payloads, results, errors and tracebacks are untrusted text), its filters, and
the security headers every page and fragment carries.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from conveyor import __version__
from conveyor.jobs import JobState

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_PATH = "/ui/static"
#: the vendored front-end library (see static/NOTICE)
HTMX_FILE = "htmx-2.0.11.min.js"
#: longest JSON text shown for a payload or a result; the API returns the whole of it
MAX_JSON_CHARS = 200_000
#: how much of a payload a job list shows
PREVIEW_CHARS = 60

STATES: list[str] = [str(s) for s in JobState]
#: what a job page says in place of a result the job does not have
NO_RESULT = {
    "scheduled": "No result yet: the job has not run.",
    "queued": "No result yet: the job is waiting for a worker.",
    "running": "No result yet: the job is running.",
    "succeeded": "The handler returned nothing.",
    "dead": "No result: the job died (see its last error and history).",
    "cancelled": "No result: the job was cancelled.",
}

#: Defence in depth under the escaping: no inline script or style, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


def utc_text(value: datetime | None) -> str:
    """The server's rendering (UTC); the page's script rewrites it in the reader's zone."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def pretty_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > MAX_JSON_CHARS:
        return text[:MAX_JSON_CHARS] + f"\n… ({len(text) - MAX_JSON_CHARS:,} more characters)"
    return text


def preview_json(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A payload on one line for a list: compact JSON, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def uid_of(job_id: str) -> str:
    return job_id.rpartition(":")[2]


def static_url(name: str) -> str:
    return f"{STATIC_PATH}/{name}?v={__version__}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(iso=iso, utc=utc_text, pretty_json=pretty_json, uid=uid_of,
                       preview_json=preview_json)
    env.globals.update(static=static_url, duration=duration, STATES=STATES,
                       NO_RESULT=NO_RESULT,
                       HTMX_FILE=HTMX_FILE, version=__version__)
    return env


ENV = _environment()


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)
