"""Per-request context the core can add to and the HTTP edge reads: the gateway's public
base URL (for links in answers) and extra response headers (quota left, billing warnings).

Set and cleared by :func:`aigw.web.handle` around each invocation; context variables keep
concurrent requests (threads in the local runner) apart.
"""

from __future__ import annotations

from contextvars import ContextVar

_base_url: ContextVar[str | None] = ContextVar("aigw_base_url", default=None)
_headers: ContextVar[dict[str, str] | None] = ContextVar("aigw_response_headers", default=None)


def begin(base_url: str | None) -> None:
    _base_url.set(base_url)
    _headers.set({})


def base_url() -> str | None:
    return _base_url.get()


def add_headers(headers: dict[str, str]) -> None:
    current = _headers.get()
    if current is None:
        current = {}
        _headers.set(current)
    current.update(headers)


def response_headers() -> dict[str, str]:
    return dict(_headers.get() or {})
