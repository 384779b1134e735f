"""Shared handling of upstream HTTP answers: vendor errors become gateway errors, safely.

429 stays 429 (with the vendor's Retry-After), a vendor's own 400 is the caller's mistake and
stays 400, anything else (auth problems with *our* vendor key, 5xx) is a 502, and timeouts 504.
The vendor's message is passed on, trimmed and stripped of control characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from aigw.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout

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


@contextmanager
def transport_errors(vendor: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{vendor} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{vendor} could not be reached: {type(exc).__name__}") from exc
