"""``GET /apis/{slug}/openapi.json``: an OpenAPI 3.1 document built from a version's schemas.

3.1 is used because its Schema Object is JSON Schema 2020-12, the dialect the gateway
validates with, so the designer's schemas go in unchanged.
"""

from __future__ import annotations

from typing import Any

from aigw.prompt_apis.model import PromptApi, Version

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ERRORS = {
    "400": "The variables do not match the input schema (the problem's `param` names the field)",
    "401": "Missing or invalid API key",
    "402": "The calling team cannot pay (the problem's `code` says why)",
    "403": "The calling team has no (approved) access to this API",
    "404": "No such API visible to the calling team",
    "410": "The API is retired (the problem names its successor)",
    "429": "Rate or quota limit reached",
    "502": "The model failed or broke the output contract",
}

_STREAM = (
    'With stream: true, server-sent events: {"delta": ...} while the model writes, then the '
    'Answer object, then [DONE]; a failure after the first event is one {"error": problem} event.'
)


def document(api: PromptApi, version: Version) -> dict[str, Any]:
    spec = version.design
    if spec.output.mode == "json":
        output_schema: dict[str, Any] = spec.output.json_schema or {}
    else:
        output_schema = {"type": "string"}
    request_schema = dict(spec.input_schema)
    answer: dict[str, Any] = {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}}
    if spec.output.mode == "text":
        # The reserved `stream` key sits beside the variables (docs/prompt-apis.md, Streaming).
        properties = dict(request_schema.get("properties") or {})
        properties["stream"] = {"type": "boolean", "default": False, "description": _STREAM}
        request_schema["properties"] = properties
        answer["text/event-stream"] = {"schema": {"type": "string", "description": _STREAM}}
    operation: dict[str, Any] = {
        "operationId": _operation_id(api.slug),
        "summary": spec.title,
        "description": spec.description,
        "tags": list(spec.tags),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": request_schema}},
        },
        "responses": {
            "200": {
                "description": "The model's answer",
                "content": answer,
            },
            **{status: {**_PROBLEM, "description": text} for status, text in _ERRORS.items()},
        },
    }
    if api.state == "deprecated":
        operation["deprecated"] = True
    return {
        "openapi": "3.1.0",
        "info": {
            "title": spec.title,
            "description": spec.description,
            "version": str(version.version),
            "x-aigw-state": api.state,
            "x-aigw-owner-team": api.owner_team,
            **({"x-aigw-successor": api.successor} if api.successor else {}),
        },
        "paths": {f"/apis/{api.slug}": {"post": operation}},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Answer": {
                    "type": "object",
                    "required": ["output", "usage", "version"],
                    "properties": {
                        "output": output_schema,
                        "usage": {
                            "type": "object",
                            "properties": {
                                "prompt_tokens": {"type": "integer"},
                                "completion_tokens": {"type": "integer"},
                                "total_tokens": {"type": "integer"},
                                "calls": {"type": "integer"},
                            },
                        },
                        "version": {"type": "integer"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                        "param": {"type": "string"},
                    },
                },
            },
            "responses": {
                "Problem": {
                    "description": "An error",
                    "content": {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    },
                }
            },
        },
        "security": [{"bearer": []}],
    }


def _operation_id(slug: str) -> str:
    head, *rest = slug.split("-")
    return "call" + head.capitalize() + "".join(part.capitalize() for part in rest)
