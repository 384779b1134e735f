"""How a :class:`~aigw.errors.GatewayError` is written: OpenAI's error object on ``/v1``,
Anthropic's on ``/v1/messages``, RFC 9457 problem+json everywhere else. Shared by the HTTP edge
(:mod:`aigw.web`), streamed error events (:mod:`aigw.streaming`) and prompt APIs.
"""

from __future__ import annotations

from typing import Any

from aigw.errors import GatewayError

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:aigw:problem:"


ANTHROPIC_ROUTES = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
# The /v1 routes and their methods: any other method on one of these paths is a 405, any
# other /v1 path a 404, both in OpenAI's shape (aigw.web).
V1_ROUTES: dict[str, frozenset[str]] = {
    "/v1/chat/completions": frozenset({"POST"}),
    "/v1/embeddings": frozenset({"POST"}),
    "/v1/responses": frozenset({"POST"}),
    "/v1/models": frozenset({"GET"}),
    "/v1/messages": frozenset({"POST"}),
    "/v1/messages/count_tokens": frozenset({"POST"}),
}
_V1_PATTERNS = (("/v1/models/", frozenset({"GET"})), ("/v1/responses/", frozenset({"GET", "DELETE"})))


def v1_methods(path: str) -> frozenset[str]:
    """The methods a /v1 path answers (none: the path does not exist)."""
    path = path.rstrip("/") or "/"
    if path in V1_ROUTES:
        return V1_ROUTES[path]
    for prefix, methods in _V1_PATTERNS:
        if path.startswith(prefix) and len(path) > len(prefix):
            return methods
    return frozenset()


_ANTHROPIC_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
    }
)


def is_openai_route(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_body(err: GatewayError, path: str) -> tuple[str, dict[str, Any]]:
    problem: dict[str, Any] = {
        "type": err.problem_type or PROBLEM_TYPE_PREFIX + err.code,
        "title": err.title,
        "status": err.status,
        "detail": err.message,
        "code": err.code,
        **err.extra,
    }
    if err.param:
        problem["param"] = err.param
    if not is_openai_route(path):
        return PROBLEM_JSON, problem
    if path in ANTHROPIC_ROUTES:
        # Anthropic's error shape, so Claude SDKs raise the matching exception.
        kind = err.error_type if err.error_type in _ANTHROPIC_ERROR_TYPES else "api_error"
        if err.status == 413:
            kind = "request_too_large"
        return JSON, {"type": "error", "error": {"type": kind, "message": err.message, "code": err.code}}
    body: dict[str, Any] = {
        "error": {"message": err.message, "type": err.error_type, "param": err.param, "code": err.code}
    }
    if err.status == 402 or err.problem_type is not None:
        # Money problems are both: SDKs read "error", billing tooling reads the problem fields
        # (payment credentials refused with 403 or 400 too: their type is the protocol's).
        return PROBLEM_JSON, {**problem, **body}
    return JSON, body
