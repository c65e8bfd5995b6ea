"""`JsonInt`: an int field of a strict model that also reads a whole JSON number written with a
fraction or an exponent (`2.0`, `1e3`).

JSON has one number type: to JSON Schema (and so to every OpenAPI client and fuzzer) `2.0` is
the integer 2, and a generator may spell it so. Strict pydantic would refuse it as a float
while the document says `integer`. `2.5`, `"2"` and `true` are still refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole)
JsonInt = Annotated[int, WHOLE]
"""Constrained and optional: `Annotated[int, Field(ge=1), WHOLE] | None` (constraints before
`WHOLE`, or pydantic's schema of the union loses them)."""
