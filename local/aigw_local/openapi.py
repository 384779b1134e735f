"""The gateway's own OpenAPI document: every handler of ``template.yaml``, in one file.

Each handler's Powertools resolver describes its routes (request models, path parameters,
declared success answers). This module merges them and adds what the resolvers cannot know:
the error answers :mod:`aigw.web` gives on every route (OpenAI error JSON on ``/v1``, problem
JSON elsewhere) instead of Powertools' 422, which this gateway never sends.

``python -m aigw_local.openapi [-o openapi.json]`` prints or writes the document; the hardening
tests point schemathesis at it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from aigw_local import template as tpl
from aigw_local.server import load_handler

# Every status aigw.web can answer on any route (authentication, size, validation, routing,
# core errors, upstream and database faults). 402 arrives with billing; listing it now is harmless.
ERROR_STATUSES: dict[int, str] = {
    400: "Invalid request (the field is named in `param`)",
    401: "Missing, invalid, revoked or expired API key",
    402: "Payment required",
    403: "The key may not do this",
    404: "No such resource or model",
    405: "Method not allowed on this path",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    429: "Rate limited (see Retry-After)",
    500: "Internal error (never expected; logged)",
    502: "Upstream provider failed",
    503: "Database unavailable (see Retry-After); nothing was let through",
    504: "Upstream provider timed out",
}

OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

PROBLEM: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "param": {"type": "string"},
    },
}

# Valid requests, so property-based tests also reach the success answers (random model ids
# mostly get 404). Schemathesis sends them first (its "explicit" phase).
REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/chat/completions"): {
        "model": "mock/echo",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 16,
    },
    ("post", "/admin/teams"): {"team_id": "example-team", "name": "Example"},
    ("post", "/admin/teams/{team_id}/keys"): {"name": "example", "allowed_models": ["mock/*"]},
}

# The portal's static pages (HTML, JS, CSS) are routes, not part of the JSON API.
NOT_JSON_API = frozenset({"/portal", "/portal/{proxy+}"})

# How API Gateway's own OpenAPI export writes a route of method ANY. A template route of method
# ANY that no resolver route details (the /v1 catch-all) is documented so: schemathesis leaves
# it alone, as it cannot know which paths the catch-all really receives.
ANY_METHOD = "x-amazon-apigateway-any-method"
_PATH_PARAM = re.compile(r"\{([^}]+)\}")

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
}
_POWERTOOLS_DEFAULT_RETURN = {"type": "string", "title": "Return"}


def _resolver_document(spec: tpl.FunctionSpec) -> dict[str, Any]:
    handler = load_handler(spec)
    module = sys.modules[handler.__module__]
    app = module.app
    document: dict[str, Any] = json.loads(app.get_openapi_json_schema())
    return document


def _error_responses(path: str) -> dict[str, Any]:
    openai_route = path == "/v1" or path.startswith("/v1/")
    responses: dict[str, Any] = {}
    for status, description in ERROR_STATUSES.items():
        content: dict[str, Any]
        if openai_route and status != 402:
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
        elif openai_route:
            # Money problems on /v1 carry both shapes (see aigw.problems.error_body).
            both = {
                "allOf": [
                    {"$ref": "#/components/schemas/Problem"},
                    {"$ref": "#/components/schemas/OpenAIError"},
                ]
            }
            content = {"application/problem+json": {"schema": both}}
        else:
            content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        response: dict[str, Any] = {"description": description, "content": content}
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[str(status)] = response
    return responses


def _fix_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    declared_success = [s for s in responses if s.startswith("2") and s != "200"]
    for status in [s for s in responses if s.startswith("2")]:
        content = responses[status].get("content", {}).get("application/json", {})
        if content.get("schema") != _POWERTOOLS_DEFAULT_RETURN:
            continue
        if status == "200" and declared_success:
            # The route declared its real success status (201...); the generated 200 is an artifact.
            del responses["200"]
        else:
            # Handlers return Response[str]; without a declared model the body is "some JSON".
            content["schema"] = {}
    for status, response in _error_responses(path).items():
        responses.setdefault(status, response)


def _shape(path: str) -> str:
    """A path with its parameters unnamed: ``/v1/models/{model_id}`` and the template's
    ``/v1/models/{model+}`` are the same route."""
    return _PATH_PARAM.sub("{}", path)


def _rename_path_parameters(operation: dict[str, Any], resolver_path: str, path: str) -> None:
    """Name the operation's path parameters as the template's path does (``model+`` for a
    greedy ``{model+}``), so the document's paths are the routes API Gateway serves."""
    names = dict(zip(_PATH_PARAM.findall(resolver_path), _PATH_PARAM.findall(path), strict=True))
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") in names:
            renamed = names[parameter["name"]]
            if renamed.endswith("+"):
                parameter["description"] = "May contain slashes (sent encoded or not)"
            parameter["name"] = renamed


def _catch_all_operation(path: str) -> dict[str, Any]:
    """A template route of method ANY that no resolver route details: it answers only that
    nothing is there (aigw.web.unknown_route), without asking for a key."""
    statuses = {404: "No route for this path", 405: "This path does not take this method (see Allow)"}
    errors = _error_responses(path)
    responses = {str(s): {**errors[str(s)], "description": d} for s, d in statuses.items()}
    responses["405"]["headers"] = {
        "Allow": {"description": "The methods the path takes", "schema": {"type": "string"}}
    }
    return {
        "summary": "Any other path or method",
        "description": "A path nothing serves, or a method the path does not take.",
        "security": [],
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "Any path under this prefix, slashes included",
            }
            for name in _PATH_PARAM.findall(path)
        ],
        "responses": responses,
    }


def build(template: dict[str, Any] | None = None) -> dict[str, Any]:
    template = template or tpl.load()
    routed = {r.function.logical_id for r in tpl.routes(template)}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "aigw",
            "version": "1",
            "description": "Serverless AI gateway: OpenAI-compatible /v1, administration and more.",
        },
        "paths": {},
        "components": {
            "schemas": {"OpenAIError": OPENAI_ERROR, "Problem": PROBLEM},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    declared = {(r.method.lower(), r.path) for r in tpl.routes(template) if r.path not in NOT_JSON_API}
    by_shape = {_shape(path): path for _, path in declared}
    for spec in tpl.functions(template):
        if spec.logical_id not in routed:
            continue
        part = _resolver_document(spec)
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            document["components"]["schemas"].setdefault(name, schema)
        for resolver_path, operations in part.get("paths", {}).items():
            path = by_shape.get(_shape(resolver_path), resolver_path)
            for method, operation in operations.items():
                # Only what API Gateway routes exists; a resolver route missing from the
                # template would be unreachable.
                if (method, path) not in declared:
                    continue
                _rename_path_parameters(operation, resolver_path, path)
                _fix_operation(path, operation)
                example = REQUEST_EXAMPLES.get((method, path))
                body = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if example is not None and body is not None:
                    body["example"] = example
                document["paths"].setdefault(path, {})[method] = operation
    for method, path in sorted(declared):
        if method == "any" and path not in document["paths"]:
            document["paths"][path] = {ANY_METHOD: _catch_all_operation(path)}
    for unused in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(unused, None)
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aigw_local.openapi", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = json.dumps(build(), indent=2, sort_keys=False) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
