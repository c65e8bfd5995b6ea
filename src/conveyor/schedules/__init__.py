"""Schedules (issue 15), the storage-free foundation: the model (`spec`), the tick generator
(`ticks`, over `cron`, `wall` and `zones`), catch-up planning (`plan`) and descriptions
(`describe`). The broker, API, CLI and dashboard parts build on these.
"""

from conveyor.schedules.cron import ALIASES, Cron, CronError
from conveyor.schedules.describe import describe, describe_every
from conveyor.schedules.plan import DEFAULT_GRACE_MS, FirePlan, plan_fire
from conveyor.schedules.spec import (
    CatchUp,
    JobTemplate,
    Overlap,
    PreviewRequest,
    Schedule,
    error_details,
    to_ms,
)
from conveyor.schedules.ticks import (
    MAX_TICK_MS,
    PREVIEW_MAX,
    Timing,
    count_ticks,
    iter_ticks,
    iter_ticks_desc,
    make_timing,
    next_tick,
    prev_tick,
    preview,
)
from conveyor.schedules.zones import TZDATA_VERSION, is_zone, load_zone, zone_names

__all__ = [
    "ALIASES",
    "DEFAULT_GRACE_MS",
    "MAX_TICK_MS",
    "PREVIEW_MAX",
    "TZDATA_VERSION",
    "CatchUp",
    "Cron",
    "CronError",
    "FirePlan",
    "JobTemplate",
    "Overlap",
    "PreviewRequest",
    "Schedule",
    "Timing",
    "count_ticks",
    "describe",
    "describe_every",
    "error_details",
    "is_zone",
    "iter_ticks",
    "iter_ticks_desc",
    "load_zone",
    "make_timing",
    "next_tick",
    "plan_fire",
    "prev_tick",
    "preview",
    "to_ms",
    "zone_names",
]
