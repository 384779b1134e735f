"""JSON Schema checks for inputs and outputs, with errors that name the field.

A schema is self-contained: ``$ref`` and ``$dynamicRef`` may only point inside it (``#...``)
and it may not declare an ``$id``, so it never names a document elsewhere (a URL, a file, the
instance metadata service). Such a schema is refused when it is saved, and validation runs
with a registry that has nothing in it and retrieves nothing: it never performs I/O.

``jsonschema`` is imported on first use only: the other handlers never pay for it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aigw.errors import Conflict, InvalidRequest

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

# Keywords whose value is a reference to resolve; only "#..." (inside the schema) is allowed.
_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose value is data, not schema: a "$ref" in there is not a reference.
_DATA = frozenset({"const", "enum", "default", "examples"})


def _validator_class() -> type[Validator]:
    from jsonschema import Draft202012Validator

    return Draft202012Validator


@functools.lru_cache(maxsize=256)
def _compiled(schema_json: str) -> Validator:
    from referencing import Registry

    # An empty registry that retrieves nothing: a reference outside the schema is unresolvable,
    # never fetched (jsonschema's default would fetch http(s) and file URLs).
    return _validator_class()(json.loads(schema_json), registry=Registry())


def _validator(schema: Mapping[str, Any]) -> Validator:
    return _compiled(json.dumps(schema, sort_keys=True))


def check_schema(schema: Mapping[str, Any], *, param: str) -> None:
    """Refuse a schema that is not valid JSON Schema (2020-12), or that refers to anything
    outside itself, with 400 naming ``param`` (and where in it)."""
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class().check_schema(dict(schema))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        at = f" at '{where}'" if where else ""
        raise InvalidRequest(
            f"{param} is not a valid JSON Schema{at}: {exc.message}", code="invalid_schema", param=param
        ) from exc
    _check_self_contained(schema, param)


def _check_self_contained(node: Any, path: str) -> None:
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_self_contained(item, f"{path}.{index}")
        return
    if not isinstance(node, Mapping):
        return
    for name, value in node.items():
        where = f"{path}.{name}"
        if name in _REFERENCES and isinstance(value, str) and not value.startswith("#"):
            raise InvalidRequest(
                f"{where} is '{value[:200]}': a schema may only refer inside itself ('#/$defs/...'); "
                "the gateway fetches nothing",
                code="external_reference",
                param=where,
            )
        if name == "$id" and isinstance(value, str):
            raise InvalidRequest(
                f"{where}: a schema may not declare an $id (it would name a document elsewhere); "
                "use $defs and '#/$defs/...' references",
                code="external_reference",
                param=where,
            )
        if name not in _DATA:
            _check_self_contained(value, where)


def first_error(schema: Mapping[str, Any], instance: Any) -> tuple[str, str] | None:
    """The most relevant violation as ``(dotted field path, message)``, or None if valid."""
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    try:
        error = best_match(_validator(schema).iter_errors(instance))
    except Unresolvable as exc:
        # Only a schema saved before external references were refused can get here.
        raise Conflict(
            f"This API's schema refers to '{exc.ref}', outside itself, which the gateway does not "
            "fetch; its owner must save a version without it",
            code="schema_unresolvable",
        ) from exc
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
