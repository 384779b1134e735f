"""Shared handling of upstream HTTP answers: vendor errors become gateway errors, safely.

429 stays 429 (with the vendor's Retry-After), a vendor's own 400 is the caller's mistake and
stays 400, anything else (auth problems with *our* vendor key, 5xx) is a 502, and timeouts 504.
The vendor's message is passed on, trimmed, stripped of control characters and of anything
that could be a credential: every configured provider key, bearer tokens and strings shaped
like API keys (vendors echo the headers they were sent). An answer that cannot be parsed (not
JSON, no ``choices``, a broken stream event) is a 502 like any other vendor fault, so the meter
fails the call instead of billing it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from aigw import sse, surrogates
from aigw.credentials import resolved_secrets
from aigw.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_MESSAGE = 500
REDACTED = "[redacted]"
MALFORMED = "upstream_malformed_response"  # the code of a vendor answer that cannot be parsed
# Strings shaped like credentials, whoever issued them: an Authorization value, OpenAI /
# Anthropic / this gateway's keys (sk-...), Groq (gsk_), Google (AIza), AWS access key ids, and
# "api-key: ..." / "key=..." pairs.
_CREDENTIALS = re.compile(
    r"(?P<scheme>(?i:\b(?:bearer|basic)\s+))[^\s\"',;]+"
    r"|\b(?:sk|rk|pk)-[A-Za-z0-9_*.-]{4,}"
    r"|\bgsk_[A-Za-z0-9]{8,}"
    r"|\bAIza[0-9A-Za-z_-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|(?P<name>(?i:\b(?:x-)?(?:goog-)?api[-_]?key|\bkey|\btoken|\bsecret)\s*[:=]\s*[\"']?)"
    r"[^\s\"',;&]{6,}"
)
_MIN_SECRET = 4  # shorter configured values would redact ordinary words


def _secrets() -> list[str]:
    """Every provider credential this container knows: resolved ones and ``*_API_KEY`` values."""
    known = set(resolved_secrets())
    known.update(v.strip() for k, v in os.environ.items() if k.endswith("_API_KEY") and v.strip())
    return sorted((s for s in known if len(s) >= _MIN_SECRET), key=len, reverse=True)


def _hide(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("name") or "") + REDACTED


def redact(text: str) -> str:
    """``text`` with configured provider keys and credential-shaped strings replaced."""
    for secret in _secrets():
        text = text.replace(secret, REDACTED)
    return _CREDENTIALS.sub(_hide, text)


def safe_message(text: str) -> str:
    """A vendor's text as a caller may see it: no credentials, no control characters, bounded."""
    cleaned = redact(_CONTROL.sub(" ", text)).strip()
    return cleaned[:_MAX_MESSAGE] + ("..." if len(cleaned) > _MAX_MESSAGE else "")


def _vendor_message(response: httpx.Response) -> str:
    try:
        body: Any = surrogates.loads(response.content)
    except ValueError:
        return safe_message(response.text or response.reason_phrase)
    if isinstance(body, list) and body:
        body = body[0]  # Gemini's streaming endpoint wraps its error in an array
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("error") or error.get("detail")
            if message:
                return safe_message(str(message))
        elif isinstance(error, str):
            return safe_message(error)
    return safe_message(response.reason_phrase)


def raise_for_upstream(response: httpx.Response, vendor: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message = f"{vendor} error: {_vendor_message(response)}"
    if status == 429:
        retry_after = response.headers.get("retry-after")
        headers = {"Retry-After": retry_after} if retry_after and retry_after.isdigit() else {}
        raise RateLimited(message, code="upstream_rate_limited", headers=headers)
    if status in (400, 404, 413, 422):
        raise InvalidRequest(message, code="upstream_invalid_request")
    if status == 504 or status == 408:
        raise UpstreamTimeout(message)
    raise UpstreamError(message, extra={"upstream_status": status})


def is_retryable(error: GatewayError) -> bool:
    """Worth asking the same vendor again: rate limits, 5xx and unreachable hosts, not timeouts
    (they already spent the whole budget) and not configuration or caller mistakes."""
    if isinstance(error, RateLimited):
        return error.code == "upstream_rate_limited"
    if isinstance(error, UpstreamTimeout) or not isinstance(error, UpstreamError):
        return False
    return error.code in ("upstream_error", "upstream_unreachable")


def can_fall_back(error: GatewayError) -> bool:
    """Another provider might answer: this one is limited, down, slow or not configured."""
    if isinstance(error, RateLimited):
        return error.code == "upstream_rate_limited"
    return isinstance(error, UpstreamError)


def post_json(client: httpx.Client, url: str, payload: Any, headers: dict[str, str], vendor: str) -> Any:
    with transport_errors(vendor):
        response = client.post(url, content=json.dumps(payload), headers=headers)
    raise_for_upstream(response, vendor)
    try:
        return surrogates.loads(response.content)
    except ValueError as exc:
        raise UpstreamError(f"{vendor} answered with something that is not JSON", code=MALFORMED) from exc


def open_stream(
    client: httpx.Client, url: str, payload: Any, headers: dict[str, str], vendor: str
) -> httpx.Response:
    """POST and wait for the status line and headers only; errors are raised here, the body
    (an event stream) is left to the caller, who must close the response."""
    request = client.build_request("POST", url, content=json.dumps(payload), headers=headers)
    with transport_errors(vendor):
        response = client.send(request, stream=True)
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
    raise_for_upstream(response, vendor)
    return response


# What parsing a vendor's JSON can raise when it is not the shape its API documents
# (pydantic's ValidationError and json's JSONDecodeError are ValueErrors).
_SHAPE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)


@contextmanager
def malformed(vendor: str) -> Iterator[None]:
    """Turn a vendor answer that does not have the documented shape into a 502."""
    try:
        yield
    except _SHAPE_ERRORS as exc:
        raise UpstreamError(
            f"{vendor} answered with a malformed response ({type(exc).__name__})", code=MALFORMED
        ) from exc


def guarded[T](chunks: Iterator[T], vendor: str) -> Iterator[T]:
    """A vendor's translated stream, where a malformed event ends it with a 502 (an ``error``
    event for the caller) instead of an exception no writer expects."""
    with malformed(vendor):
        yield from chunks


def event_json(event: sse.Event) -> Any:
    """A stream event's JSON payload (lone surrogates replaced)."""
    return surrogates.loads(event.data)


def events(response: httpx.Response, vendor: str) -> Generator[sse.Event]:
    """The server-sent events of an open streaming response; always closes it."""
    try:
        with transport_errors(vendor):
            yield from sse.parse(response.iter_lines())
    finally:
        response.close()


@contextmanager
def transport_errors(vendor: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{vendor} did not answer in time") from exc
    except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
        raise UpstreamError(
            f"{vendor} could not be reached: {type(exc).__name__}", code="upstream_unreachable"
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{vendor} could not be reached: {type(exc).__name__}") from exc
