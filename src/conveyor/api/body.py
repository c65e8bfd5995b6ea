"""Reading a JSON request body into a strict model, and writing a model as a JSON response.

Bodies are parsed by pydantic in JSON mode, strictly, straight from the bytes: faster than
`json.loads` then validation, and strict JSON mode still reads RFC 3339 strings as datetimes.
"""

from __future__ import annotations

from typing import TypeVar

import pydantic
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from conveyor.api.errors import InvalidJson, UnsupportedMediaType, pydantic_details
from conveyor.errors import ValidationError

M = TypeVar("M", bound=BaseModel)


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def parse_model(content_type: str | None, body: bytes, model: type[M]) -> M:
    """415 unless the body is declared JSON, 400 if it does not parse, 422 if invalid."""
    if not is_json(content_type):
        raise UnsupportedMediaType(
            "the request body must be JSON (Content-Type: application/json)",
            details={"content_type": content_type},
        )
    try:
        return model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(err["type"] == "json_invalid" for err in errors):
            raise InvalidJson(
                "request body is not valid JSON", details=pydantic_details(errors, ("body",))
            ) from None
        raise ValidationError(
            "invalid request body", details=pydantic_details(errors, ("body",))
        ) from None


async def read_model(request: Request, model: type[M]) -> M:
    return parse_model(request.headers.get("content-type"), await request.body(), model)


def json_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), status, headers,
                    media_type="application/json")
