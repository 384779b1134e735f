"""Shared handling of upstream HTTP answers: vendor errors become gateway errors, safely.

429 stays 429 (with the vendor's Retry-After), a vendor's own 400 is the caller's mistake and
stays 400, anything else (auth problems with *our* vendor key, 5xx) is a 502, and timeouts 504.
The vendor's message is passed on, trimmed and stripped of control characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from aigw import sse
from aigw.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_MESSAGE = 500


def safe_message(text: str) -> str:
    cleaned = _CONTROL.sub(" ", text).strip()
    return cleaned[:_MAX_MESSAGE] + ("..." if len(cleaned) > _MAX_MESSAGE else "")


def _vendor_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
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
        return response.json()
    except ValueError as exc:
        raise UpstreamError(f"{vendor} answered with something that is not JSON") from exc


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
