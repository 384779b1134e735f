"""JSON Schema checks for inputs and outputs, with errors that name the field.

``jsonschema`` is imported on first use only: the other handlers never pay for it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aigw.errors import InvalidRequest

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


def _validator_class() -> type[Validator]:
    from jsonschema import Draft202012Validator

    return Draft202012Validator


@functools.lru_cache(maxsize=256)
def _compiled(schema_json: str) -> Validator:
    return _validator_class()(json.loads(schema_json))


def _validator(schema: Mapping[str, Any]) -> Validator:
    return _compiled(json.dumps(schema, sort_keys=True))


def check_schema(schema: Mapping[str, Any], *, param: str) -> None:
    """Refuse a schema that is not valid JSON Schema (2020-12) with 400 naming ``param``."""
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class().check_schema(dict(schema))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        at = f" at '{where}'" if where else ""
        raise InvalidRequest(
            f"{param} is not a valid JSON Schema{at}: {exc.message}", code="invalid_schema", param=param
        ) from exc


def first_error(schema: Mapping[str, Any], instance: Any) -> tuple[str, str] | None:
    """The most relevant violation as ``(dotted field path, message)``, or None if valid."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(instance))
    if error is None:
        return None
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(str(missing[0]))
            return ".".join(path), f"'{missing[0]}' is required"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        unexpected = [name for name in error.instance if name not in known]
        if unexpected:
            path.append(str(unexpected[0]))
            return ".".join(path), f"'{unexpected[0]}' is not an accepted field"
    return ".".join(path), error.message


def validate_input(schema: Mapping[str, Any], variables: Mapping[str, Any]) -> None:
    found = first_error(schema, dict(variables))
    if found is None:
        return
    field, message = found
    where = f" at '{field}'" if field else ""
    raise InvalidRequest(f"Invalid input{where}: {message}", code="invalid_input", param=field or None)
