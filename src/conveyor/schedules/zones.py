"""IANA time zones, always read from the `tzdata` package.

`zoneinfo.ZoneInfo(name)` prefers the host's /usr/share/zoneinfo, so two workers on hosts with
different system tz data could compute different ticks for one schedule (and so fire a tick
twice under two identities). Reading every zone from the pinned `tzdata` package gives every
process with the same environment the same rules, and works on hosts with no zoneinfo at all.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
from zoneinfo import ZoneInfo

#: the `tzdata` package's version (e.g. "2026.6"), for logs and the docs
TZDATA_VERSION: str = importlib.metadata.version("tzdata")

_EXCLUDED = frozenset({"Factory"})  # a placeholder zone ("-00"), not a place


@functools.cache
def zone_names() -> frozenset[str]:
    """Every zone name `tzdata` ships (canonical names and links such as `US/Eastern`)."""
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(text.split()) - _EXCLUDED


def is_zone(name: object) -> bool:
    return isinstance(name, str) and name in zone_names()


@functools.cache
def load_zone(name: str) -> ZoneInfo:
    """The zone `name` from `tzdata`; KeyError for a name it does not ship."""
    if not is_zone(name):
        raise KeyError(name)
    parts = name.split("/")
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*parts)
    with resource.open("rb") as f:
        return ZoneInfo.from_file(f, key=name)
