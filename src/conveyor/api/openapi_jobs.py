"""`JobIn` in the document: one variant per job type the server knows, each with its payload's
schema, discriminated by `type`.

The server refuses a type it has no handler for (`unknown_job_type`) and validates a payload
against its type's model, so a document with `type: string` and `payload: any` promised more
than the server accepts. Each variant is the common `JobIn` fields with `type` fixed and
`payload` the handler's model (required when the model has required fields; `{}` and `null`
both mean "the model's defaults" otherwise). A type without a model takes any JSON.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.handlers.registry import HandlerSpec, Registry

REF = "#/components/schemas/{model}"


def pascal(type_name: str) -> str:
    """`email.send` -> `EmailSend`."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", type_name) if p)


def _free_name(schemas: dict[str, Any], wanted: str, schema: dict[str, Any]) -> str:
    """`wanted`, or `wanted2`, ... when another schema already has that name."""
    name, n = wanted, 1
    while name in schemas and schemas[name] != schema:
        n += 1
        name = f"{wanted}{n}"
    return name


def _accepts_defaults(spec: HandlerSpec) -> bool:
    try:
        spec.validate_payload({})
    except (ConveyorError, ValueError):
        return False
    return True


def _payload(schemas: dict[str, Any], spec: HandlerSpec) -> tuple[dict[str, Any], bool]:
    """The payload's schema in a variant, and whether the variant requires it."""
    model = spec.payload_model
    if model is None:
        return {"$ref": REF.format(model="JsonValue"), "description": "any JSON value"}, False
    schema = model.model_json_schema(ref_template=REF)
    for sub_name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(sub_name, sub)
    name = _free_name(schemas, model.__name__, schema)
    schemas[name] = schema
    ref = {"$ref": REF.format(model=name)}
    if not _accepts_defaults(spec):
        return ref, True
    return {"anyOf": [ref, {"type": "null"}],
            "description": "omitted or null: the model's defaults"}, False


def add_job_variants(schemas: dict[str, Any], registry: Registry) -> None:
    """Replace the generic `JobIn` schema by the union of one variant per registered type."""
    base = schemas.get("JobIn")
    types = registry.public_types()
    if base is None or not types:
        return
    mapping: dict[str, str] = {}
    for type_name in sorted(types):
        spec = registry.get(type_name)
        variant = copy.deepcopy(base)
        payload, required = _payload(schemas, spec)
        variant["properties"]["type"] = {"type": "string", "const": type_name}
        variant["properties"]["payload"] = payload
        variant["required"] = ["type", "payload"] if required else ["type"]
        variant["description"] = f"A `{type_name}` job. {base.get('description', '')}".strip()
        name = _free_name(schemas, f"{pascal(type_name)}JobIn", variant)
        variant["title"] = name
        schemas[name] = variant
        mapping[type_name] = REF.format(model=name)
    schemas["JobIn"] = {
        "title": "JobIn",
        "description": "One job to enqueue; its `type` names a job type this server knows, "
        "and picks the schema of its `payload`.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
