"""Schedules declared in code: `Registry.add_schedules(Schedule(...), ...)` (or `declare`) and
`@handler(..., schedule=...)`, read back as validated `Schedule` objects for the sync a worker
runs at start (`AsyncSchedules.sync`: idempotent, so any number of workers may run it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.errors import ValidationError
from conveyor.handlers.registry import Registry, default_registry
from conveyor.schedules.spec import Schedule


def declare(*schedules: Schedule, registry: Registry | None = None) -> None:
    """Declare schedules in code (synced when a worker with this app starts)."""
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError("declare() takes conveyor.schedules.Schedule objects")
    (registry if registry is not None else default_registry).add_schedules(*schedules)


def _from_handler(type_name: str, item: Any) -> Schedule:
    if isinstance(item, Schedule):
        if item.job.type != type_name:
            raise ValidationError(
                f"the schedule of handler {type_name!r} enqueues type {item.job.type!r}",
                details={"schedule": item.name})
        return item
    if isinstance(item, str):
        data: dict[str, Any] = {"cron": item}
    elif isinstance(item, int | float) and not isinstance(item, bool):
        data = {"every_s": item}
    elif isinstance(item, Mapping):
        data = dict(item)
    else:
        raise ValidationError(f"schedule= of handler {type_name!r} must be a cron text, a "
                              "number of seconds or a mapping", details={"type": type_name})
    data.setdefault("name", type_name)
    job = dict(data.get("job") or {})
    job["type"] = type_name
    data["job"] = job
    return Schedule.parse(data)


def declared(registry: Registry | None = None) -> list[Schedule]:
    """Every schedule declared on `registry`, validated (`ValidationError` on the first bad
    one, naming it); two declarations of one name must be identical."""
    reg = registry if registry is not None else default_registry
    out: dict[str, Schedule] = {}
    for type_name, item in reg.schedules:
        s = item if type_name is None else _from_handler(type_name, item)
        if not isinstance(s, Schedule):
            raise ValidationError("a declared schedule is not a Schedule", details={})
        if s.name in out and out[s.name] != s:
            raise ValidationError(f"schedule {s.name!r} is declared twice, differently",
                                  details={"schedule": s.name})
        out[s.name] = s
    return list(out.values())
