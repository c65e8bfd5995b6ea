"""`scripts.prune`: each Lua script carries only the prelude definitions it reaches."""

from __future__ import annotations

import re

from conveyor.brokers.redis.scripts import Scripts, prune

LIB = """-- header
local function a() return 1 end
-- b uses a
local function b() return a() + 1 end
local T = {x = 1}
local function c()
  -- mentions T only in a comment
  return 3
end
local function d() return T.x end
"""


def test_it_keeps_what_the_body_reaches_in_order_and_drops_the_rest() -> None:
    out = prune(LIB, "return b()")
    assert "local function a()" in out and "local function b()" in out
    assert out.index("local function a()") < out.index("local function b()")
    assert "local T" not in out and "local function c()" not in out and "function d" not in out


def test_a_name_only_a_comment_mentions_is_not_kept() -> None:
    out = prune(LIB, "-- d() would need T\nreturn c()")
    assert "local function c()" in out and "local T" not in out and "function d" not in out
    assert "local T" in prune(LIB, "return d()")


def test_enqueue_and_ack_carry_what_they_use_and_no_more() -> None:
    scripts = Scripts()
    lib_names = set(re.findall(r"^local\s+(?:function\s+)?([A-Za-z_]\w*)", scripts.source["ack"],
                               re.MULTILINE))
    assert "set_corrupt" in lib_names and "add_history" in lib_names  # reached via set_corrupt
    assert "take_seqs" not in lib_names  # ack never takes seqs
    enqueue = scripts.source["enqueue"]
    for name in ("now_ms", "take_seqs", "emit", "wake", "queued_score", "int"):
        assert f"local function {name}(" in enqueue
    assert "local function set_corrupt(" not in enqueue
