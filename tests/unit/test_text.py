"""Strings made safe for a broker: valid UTF-8 whatever they held, and bounded."""

from __future__ import annotations

import json
import os

from conveyor.brokers.text import (
    MESSAGE_LIMIT,
    TRACEBACK_LIMIT,
    safe_json,
    safe_message,
    safe_text,
    safe_traceback,
)


def test_lone_surrogates_become_readable_escapes() -> None:
    name = os.fsdecode(b"caf\xe9.csv")
    assert safe_text(name) == "caf\\udce9.csv"
    assert safe_text("ok ü 漢字 😀") == "ok ü 漢字 😀"  # valid text is left alone


def test_json_text_stays_parseable() -> None:
    fixed = safe_json('{"f": "caf\udce9", "e": "\ud83d\ude00"}')
    assert json.loads(fixed) == {"f": "caf\ufffd", "e": "😀"}  # a surrogate pair is one char


def test_messages_keep_their_start_and_tracebacks_their_end() -> None:
    message = safe_message("m" * MESSAGE_LIMIT + "tail")
    assert len(message) == MESSAGE_LIMIT and message.startswith("mmm")
    assert message.endswith("(truncated)...")
    tb = safe_traceback("head" + "t" * TRACEBACK_LIMIT + "ValueError: x")
    assert len(tb) == TRACEBACK_LIMIT and tb.endswith("ValueError: x")
    assert safe_message("short") == "short"
