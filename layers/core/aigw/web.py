"""The HTTP edge shared by every handler: the one place where core errors become HTTP.

``/v1/*`` routes answer errors the way OpenAI does (``{"error": {...}}``) so SDKs show them;
every other route answers ``application/problem+json`` (RFC 9457). A 402 on ``/v1`` carries
both shapes at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel

from aigw import request_context, streaming, surrogates
from aigw.config import settings
from aigw.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge
from aigw.problems import JSON, error_body, is_openai_route, v1_methods

if TYPE_CHECKING:
    # Keys (and with them the table and boto3) load on the first authenticated request: a
    # function whose routes are all public (the portal's static pages) never needs them.
    from aigw.keys import ApiKey

logger = Logger(service="aigw")

LambdaResult = dict[str, Any]

# Deeper JSON than this is refused before parsing: Python's parser recurses, and a body of
# 100k brackets would otherwise end in RecursionError (a 500). Real requests, tool schemas
# included, stay far below it.
MAX_JSON_DEPTH = 100
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def error_response(err: GatewayError, path: str) -> Response[str]:
    content_type, body = error_body(err, path)
    headers = dict(err.headers)
    if err.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="aigw"')
    return Response(err.status, content_type, json.dumps(body), headers=headers)


def json_response(
    payload: BaseModel | Mapping[str, Any] | list[Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(exclude_none=True)
    else:
        body = json.dumps(payload, default=str)
    return Response(status, JSON, body, headers=dict(headers or {}))


# pydantic names the member of a union it tried in an error's location ("input.str",
# "tools.0.function-after[...]"): a caller knows only the field.
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|list|dict|none|[a-z-]+\[.*\])$")


def _validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    loc = loc[:1] + [part for part in loc[1:] if not _UNION_MEMBER.match(part)]
    if first.get("type") == "json_invalid":
        return InvalidRequest("The request body is not valid JSON", code="invalid_json")
    if not loc and first.get("type") == "missing":
        return InvalidRequest(
            "The request body is empty: send a JSON object", code="missing_body", param="body"
        )
    param = ".".join(loc) or None
    message = str(first.get("msg", "Invalid request"))
    where = f" at '{param}'" if param else ""
    return InvalidRequest(f"Invalid request{where}: {message}", code="invalid_request", param=param)


def resolver() -> APIGatewayRestResolver:
    """A Powertools REST resolver with pydantic validation and the gateway's error mapping."""
    app = APIGatewayRestResolver(enable_validation=True)

    def path() -> str:
        return app.current_event.path or ""

    @app.exception_handler(GatewayError)
    def _gateway_error(exc: GatewayError) -> Response[str]:
        if exc.status == 402:
            # A billing 402 may carry a machine payment challenge (loaded only on this path).
            from aigw.billing import machine_payments

            machine_payments.on_payment_required(exc, app.current_event.raw_event, app.context.get("api_key"))
        return error_response(exc, path())

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        return error_response(_validation_error(exc), path())

    @app.exception_handler(NotFoundError)
    def _no_route(_: NotFoundError) -> Response[str]:
        return error_response(no_route(app.current_event.http_method, path()), path())

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        err = GatewayError("The gateway hit an internal error; it has been logged")
        return error_response(err, path())

    return app


def no_route(method: str, path: str) -> GatewayError:
    """404 for a path nothing serves, 405 for a method a path does not take; on /v1 worded as
    OpenAI words them, so SDKs show a useful message."""
    if not is_openai_route(path):
        return NotFound(f"No route for {method} {path}")
    allowed = v1_methods(path)
    if allowed and method not in allowed:
        return MethodNotAllowed(
            f"Invalid method for URL ({method} {path}): use {' or '.join(sorted(allowed))}",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    return NotFound(f"Invalid URL ({method} {path})", code="unknown_url")


def unknown_route(event: dict[str, Any]) -> LambdaResult:
    """The answer for a path no route serves (API Gateway's catch-all resource)."""
    request_context.begin(public_base_url(event))
    rid = event_request_id(event)
    if rid:
        request_context.add_headers({REQUEST_ID_HEADER: rid})
    err = no_route(str(event.get("httpMethod") or "GET"), str(event.get("path") or ""))
    return _with_context_headers(_refusal(err, event))


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def header(event: Mapping[str, Any], name: str) -> str | None:
    return _header(event, name.lower())


def _authenticate_event(event: Mapping[str, Any]) -> ApiKey:
    from aigw import keys

    return keys.authenticate(keys.parse_bearer(_header(event, "authorization")))


def current_key(app: APIGatewayRestResolver) -> ApiKey:
    """The caller's key, authenticated by :func:`handle` before routing and validation."""
    from aigw.keys import ApiKey

    key = app.context.get("api_key")
    if not isinstance(key, ApiKey):
        raise AssertionError("route is public: it has no authenticated key")
    return key


def request_id(app: APIGatewayRestResolver) -> str:
    return app.current_event.request_context.request_id


def _precheck(event: dict[str, Any]) -> GatewayError | None:
    """Refuse what must never reach routing: oversize, undecodable or non-UTF-8 bodies, and
    JSON text that decodes to something that is not Unicode text (a lone surrogate)."""
    body = event.get("body")
    if body is None:
        return None
    limit = settings().max_body_bytes
    raw: bytes
    if event.get("isBase64Encoded"):
        if len(body) > limit * 4 // 3 + 4:
            return PayloadTooLarge(f"Request body exceeds {limit} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return InvalidRequest("Request body is not valid base64", code="invalid_body")
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > limit:
        return PayloadTooLarge(f"Request body exceeds {limit} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidRequest("Request body is not valid UTF-8", code="invalid_encoding")
    if _too_deep(text):
        return InvalidRequest(
            f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels", code="invalid_json"
        )
    refused = _lone_surrogate(text)
    if refused is not None:
        return refused
    event["body"] = text
    event["isBase64Encoded"] = False
    _force_json_content_type(event)
    return None


def _empty_body_is_an_empty_object(event: dict[str, Any]) -> None:
    """On ``/v1`` routes, a POST without a body is validated as ``{}``, as OpenAI's API does,
    so the answer names the first missing field (``param: "model"``), not a nameless "Field
    required". (Elsewhere an empty body is refused as such, naming ``body``.)"""
    if not is_openai_route(str(event.get("path") or "")):
        return
    if event.get("httpMethod") in ("POST", "PUT", "PATCH") and not event.get("body"):
        event["body"] = "{}"
        event["isBase64Encoded"] = False
        _force_json_content_type(event)


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _lone_surrogate(text: str) -> InvalidRequest | None:
    """``"\\ud800"`` is valid JSON but not text: it cannot be stored, sent on or answered, so it
    is refused here, naming the field, before anything is reserved or sent to a vendor."""
    if not surrogates.ESCAPE.search(text):
        return None
    try:
        where = surrogates.find(json.loads(text))
    except ValueError:
        return None  # not JSON: the route's validation says so
    if where is None:
        return None
    where = surrogates.scrub(where)  # a key can hold one too: never echo it back
    at = f" at '{where}'" if where else ""
    return InvalidRequest(
        f"The request body holds a lone UTF-16 surrogate{at} (an unpaired \\uD800-\\uDFFF "
        "escape), which is not valid Unicode text",
        code="invalid_encoding",
        param=where or None,
    )


def _force_json_content_type(event: dict[str, Any]) -> None:
    # Every route takes JSON; like OpenAI, read the body as JSON whatever Content-Type says
    # (curl -d sends form-urlencoded), instead of letting the validator parse it as a form.
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field) or {}
        for name in [n for n in headers if n.lower() == "content-type"]:
            del headers[name]
    event.setdefault("headers", {})
    if event["headers"] is None:
        event["headers"] = {}
    event["headers"]["content-type"] = JSON
    if event.get("multiValueHeaders") is not None:
        event["multiValueHeaders"]["content-type"] = [JSON]


REQUEST_ID_HEADER = "x-request-id"


def event_request_id(event: Mapping[str, Any]) -> str | None:
    """API Gateway's id of this request: the id of its usage record too."""
    value = (event.get("requestContext") or {}).get("requestId")
    return str(value) if value else None


def _refusal(err: GatewayError, event: Mapping[str, Any]) -> LambdaResult:
    content_type, body = error_body(err, str(event.get("path") or ""))
    headers = {"Content-Type": content_type, **err.headers}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="aigw"'
    return {"statusCode": err.status, "headers": headers, "body": json.dumps(body), "isBase64Encoded": False}


def public_base_url(event: Mapping[str, Any]) -> str | None:
    """The gateway's own base URL as the caller reached it (for links in answers)."""
    ctx = event.get("requestContext") or {}
    domain = str(ctx.get("domainName") or _header(event, "host") or "")
    if not domain:
        return None
    if domain.endswith(".amazonaws.com"):
        return f"https://{domain}/{ctx.get('stage', '')}".rstrip("/")
    local = domain.split(":")[0] in ("127.0.0.1", "localhost", "::1")
    return f"{'http' if local else 'https'}://{domain}"


def _with_context_headers(result: LambdaResult) -> LambdaResult:
    extra = request_context.response_headers()
    if extra:
        result["headers"] = {**extra, **(result.get("headers") or {})}
    return result


def handle(
    app: APIGatewayRestResolver,
    event: dict[str, Any],
    context: Any,
    *,
    public_resources: frozenset[str] = frozenset(),
    admin_only: bool = False,
) -> LambdaResult:
    """Run one API Gateway event through the checks every route shares, then the router.

    Order matters: size and encoding first, then authentication (an anonymous caller learns
    nothing about validation rules), then Powertools routing and pydantic validation.
    """
    result = handle_streaming(app, event, context, public_resources=public_resources, admin_only=admin_only)
    if isinstance(result, streaming.StreamingResponse):
        result.close()
        raise TypeError("this handler does not stream; use handle_streaming")
    return result


def handle_streaming(
    app: APIGatewayRestResolver,
    event: dict[str, Any],
    context: Any,
    *,
    public_resources: frozenset[str] = frozenset(),
    admin_only: bool = False,
    authenticate: Callable[[Mapping[str, Any]], ApiKey] | None = None,
) -> LambdaResult | streaming.StreamingResponse:
    """:func:`handle` for functions whose routes may stream (see :mod:`aigw.streaming`): the
    answer is a proxy-result dict, or the stream a route handed over. ``authenticate``
    replaces the Bearer check (the Anthropic-format route also takes ``x-api-key``)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    request_context.begin(public_base_url(event), remaining_ms=remaining() if callable(remaining) else None)
    rid = event_request_id(event)
    if rid:
        # Every answer names its request: the same id as the call's usage record.
        request_context.add_headers({REQUEST_ID_HEADER: rid})
    receipt: dict[str, str] = {}
    try:
        refused = _precheck(event)
        if refused is not None:
            return _with_context_headers(_refusal(refused, event))
        if event.get("resource") not in public_resources:
            _empty_body_is_an_empty_object(event)
            key = (authenticate or _authenticate_event)(event)
            if admin_only:
                from aigw import keys

                keys.require_admin(key)
            app.append_context(api_key=key)
            request_context.set_caller(request_context.Caller(key.key_id, key.team_id, key.expires_at))
            if _header(event, "payment-authorization") is not None:
                receipt = _pay(event, key)
    except GatewayError as exc:
        app.clear_context()
        return _with_context_headers(_refusal(exc, event))
    streaming.discard_pending()
    result: LambdaResult = app.resolve(event, context)
    request_context.set_caller(None)  # links issued after this request are not its key's
    stream = streaming.take_pending()
    if stream is not None and result.get("statusCode") == stream.status:
        # Headers the core added before the first byte (quota left, billing warnings).
        stream.headers = {**request_context.response_headers(), **stream.headers}
        if 200 <= stream.status < 300:
            stream.headers.update(receipt)
        return stream
    if stream is not None:
        stream.close()  # the route handed over a stream, then failed: nothing was sent yet
    if receipt and 200 <= int(result.get("statusCode", 500)) < 300:
        result["headers"] = {**(result.get("headers") or {}), **receipt}
    return _with_context_headers(result)


def _pay(event: dict[str, Any], key: ApiKey) -> dict[str, str]:
    """A machine payment credential pays before the route runs (the route then finds the
    credits); its receipt goes on a successful answer only, as the protocol says."""
    from aigw.billing import machine_payments

    paid = machine_payments.redeem(event, key)
    return paid.headers() if paid is not None else {}
