"""Per-request context the core can add to and the HTTP edge reads: the gateway's public
base URL (for links in answers), the caller's key (links are bound to it), extra response
headers (quota left, billing warnings) and work deferred until the answer has been sent.

Set and cleared by :func:`aigw.web.handle` around each invocation; context variables keep
concurrent requests (threads in the local runner) apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from aws_lambda_powertools import Logger

_logger = Logger(service="aigw")

_base_url: ContextVar[str | None] = ContextVar("aigw_base_url", default=None)
_headers: ContextVar[dict[str, str] | None] = ContextVar("aigw_response_headers", default=None)
_machine_payment: ContextVar[str | None] = ContextVar("aigw_machine_payment", default=None)


@dataclass(frozen=True)
class Caller:
    """The API key the request was authenticated with (billing links are bound to it)."""

    key_id: str
    team_id: str
    expires_at: int | None = None


_caller: ContextVar[Caller | None] = ContextVar("aigw_caller", default=None)
_deadline: ContextVar[float | None] = ContextVar("aigw_deadline", default=None)


def begin(base_url: str | None, *, remaining_ms: int | None = None) -> None:
    """Start a request: ``remaining_ms`` is the function's time left (the Lambda context's)."""
    _base_url.set(base_url)
    _headers.set({})
    _caller.set(None)
    _machine_payment.set(None)
    _deadline.set(time.monotonic() + remaining_ms / 1000 if remaining_ms else None)


def set_machine_payment(payment_intent: str) -> None:
    """This request was paid for by a machine payment (:mod:`aigw.billing.machine_payments`)."""
    _machine_payment.set(payment_intent)


def machine_payment() -> str | None:
    """The PaymentIntent that paid for this request, if any: its usage records name it."""
    return _machine_payment.get()


def seconds_left() -> float | None:
    """How long the function may still run for this request (None: not known)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def base_url() -> str | None:
    return _base_url.get()


def set_caller(caller: Caller | None) -> None:
    _caller.set(caller)


def caller() -> Caller | None:
    return _caller.get()


def add_headers(headers: dict[str, str]) -> None:
    current = _headers.get()
    if current is None:
        current = {}
        _headers.set(current)
    current.update(headers)


def response_headers() -> dict[str, str]:
    return dict(_headers.get() or {})


# Work that may wait until the answer has left (settling a call's meter): the server that sends
# the answer opens a scope and runs what was deferred once the caller has it. With no scope open
# (Lambda's stock runtime, a stream's body, tests calling a handler directly) it runs at once,
# so nothing is ever left undone. See docs/decisions/0012-settle-after-the-answer.md.
_deferred: ContextVar[list[Callable[[], None]] | None] = ContextVar("aigw_deferred", default=None)


def defer(task: Callable[[], None]) -> None:
    """Run ``task`` after the answer is sent, or now if no server will run it later."""
    tasks = _deferred.get()
    if tasks is None:
        task()
    else:
        tasks.append(task)


def after_answer(task: Callable[[], None]) -> bool:
    """Run ``task`` after the answer if a server will; otherwise do nothing and return False.
    For work that is only worth doing off the caller's path (reading a cached item again before
    it expires: without a server to run it later, the next call's own read is no worse)."""
    tasks = _deferred.get()
    if tasks is None:
        return False
    tasks.append(task)
    return True


def open_deferred() -> list[Callable[[], None]]:
    """Called by a server before it invokes a handler; returns the list it must run later."""
    tasks: list[Callable[[], None]] = []
    _deferred.set(tasks)
    return tasks


def close_deferred() -> None:
    """Called by the server once the handler returned: later :func:`defer` calls run at once."""
    _deferred.set(None)


def run_deferred(tasks: list[Callable[[], None]]) -> None:
    """Run what a handler deferred. The caller already has its answer, so a failure here can
    only be logged; each task guards what it owns (a meter's hold expires and is released)."""
    while tasks:
        task = tasks.pop(0)
        try:
            task()
        except Exception:
            _logger.exception("work deferred after the answer failed")
