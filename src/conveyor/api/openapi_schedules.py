"""The schedule bodies in the document, stated as exactly as the server checks them:
`cron` xor `every_s` (a `oneOf`), and a job template per job type the server knows (its
payload's schema, as `JobIn`'s variants), so a body the document allows is a body the server
stores. What JSON Schema cannot say (`end_at` after `start_at`, a cron text's meaning: format
`cron`) is in the descriptions; the server answers 422 for those.
"""

from __future__ import annotations

import copy
from typing import Any

from conveyor.api.openapi_jobs import _free_name, _payload, pascal
from conveyor.handlers.registry import Registry

REF = "#/components/schemas/{model}"


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional property's schema (with its format, bounds)."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") != "null":
            return copy.deepcopy(branch)
    return {}


def _split_by_spec(schemas: dict[str, Any], name: str) -> None:
    """`name` becomes a `oneOf` of two whole variants, `<name>Cron` and `<name>Every`: exactly
    one of `cron` and `every_s` (the other absent or null). Whole variants, not constraints
    beside the properties, so a generator draws each field from one schema."""
    base = schemas[name]
    base["properties"].pop("name", None)  # the path names the schedule
    required = [r for r in base.get("required", []) if r != "name"]
    cron = _not_null(base["properties"]["cron"])
    cron.pop("minLength", None)  # the length of a cron text is part of its format
    cron.pop("maxLength", None)
    refs = []
    for suffix, given, other, given_schema in (
        ("Cron", "cron", "every_s", cron),
        ("Every", "every_s", "cron", _not_null(base["properties"]["every_s"])),
    ):
        variant = copy.deepcopy(base)
        variant["properties"][given] = given_schema
        variant["properties"][other] = {"type": "null"}
        variant["required"] = [*required, given]
        variant["title"] = f"{name}{suffix}"
        schemas[f"{name}{suffix}"] = variant
        refs.append({"$ref": REF.format(model=f"{name}{suffix}")})
    schemas[name] = {"title": name, "description": base.get("description", ""),
                     "oneOf": refs}


def add_schedule_schemas(schemas: dict[str, Any], registry: Registry | None) -> None:
    for name in ("ScheduleIn", "PreviewRequest"):
        if name in schemas:
            _split_by_spec(schemas, name)
    base = schemas.get("JobTemplate")
    types = registry.public_types() if registry is not None else []
    if base is None or registry is None or not types:
        return
    refs: list[dict[str, str]] = []
    mapping: dict[str, str] = {}
    for type_name in sorted(types):
        variant = copy.deepcopy(base)
        payload, required = _payload(schemas, registry.get(type_name))
        variant["properties"]["type"] = {"type": "string", "const": type_name}
        variant["properties"]["payload"] = payload
        variant["required"] = ["type", "payload"] if required else ["type"]
        variant["description"] = f"Each tick enqueues a `{type_name}` job."
        vname = _free_name(schemas, f"{pascal(type_name)}JobTemplate", variant)
        variant["title"] = vname
        schemas[vname] = variant
        mapping[type_name] = REF.format(model=vname)
        refs.append({"$ref": REF.format(model=vname)})
    schemas["JobTemplate"] = {
        "title": "JobTemplate",
        "description": "The job each tick enqueues; its `type` names a job type this server "
        "knows and picks the schema of its `payload`. `max_attempts` / `timeout_s` left out: "
        "the handler's.",
        "oneOf": refs, "discriminator": {"propertyName": "type", "mapping": mapping},
    }
