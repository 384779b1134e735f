"""The meter: every admitted call ends settled or failed, exactly once, with a usage record.

:func:`open_meter` admits a call (:mod:`aigw.billing.admission`) before the provider is
contacted. ``settle`` bills what the vendor reported (checked: negative or absurd usage is
clamped, more output than was reserved is billed and flagged) and ``fail`` bills nothing.
Either way the call's unused reservation goes back to its lease at once, in memory; the usage
record (one ``PutItem``) and whatever the lease needs (a flush, a renewal, a top-up) are
written after the answer has been sent (:func:`aigw.request_context.defer`). A warm container
with a live lease therefore makes no DynamoDB request before the vendor and one after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from aigw import clock, request_context
from aigw.billing import admission, held_leases
from aigw.billing.admission import Admitted, Estimate, Terms, billing_headers
from aigw.billing.budget import Amounts
from aigw.billing.pricing import cost_micro_usd
from aigw.catalog import ModelInfo
from aigw.chat import Usage
from aigw.errors import GatewayError
from aigw.usage import records as usage_records
from aigw.usage.records import Flag, UsageRecord, UsageSource

logger = Logger(service="aigw-meter")


def checked_usage(usage: Usage, admitted: Admitted) -> tuple[Usage, tuple[Flag, ...]]:
    """What to bill for what a vendor reported (issue 11, items 1 and 2).

    Negative counts never lower a counter: a negative prompt count is billed as the reserved
    prompt estimate, a negative output count as the reserved output limit. Absurd counts (more
    than the model's whole context window) are clamped to it. More output than the limit that
    was sent is billed as reported, and flagged."""
    model = admitted.model
    flags: list[Flag] = []
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    cached = usage.cached_tokens
    window = max(model.context_window, admitted.prompt_tokens + admitted.output_limit)
    if prompt < 0 or prompt > window:
        prompt = admitted.prompt_tokens if prompt < 0 else window
        flags.append("usage_clamped")
    if completion < 0 or completion > window:
        completion = admitted.output_limit if completion < 0 else window
        flags.append("usage_clamped")
    if cached < 0 or cached > prompt:
        cached = min(max(cached, 0), prompt)
        flags.append("usage_clamped")
    if "usage_clamped" in flags:
        logger.warning(
            "vendor reported impossible usage; billed clamped values",
            extra={
                "model": model.id,
                "reported": usage.model_dump(exclude_none=True),
                "billed": {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached},
            },
        )
    if admitted.output_limit and completion > admitted.output_limit:
        flags.append("overrun")
        logger.warning(
            "vendor generated past the output limit it was sent; billed what it reported",
            extra={"model": model.id, "output_limit": admitted.output_limit, "completion_tokens": completion},
        )
    details = dict(usage.prompt_tokens_details or {})
    if cached or "cached_tokens" in details:
        details["cached_tokens"] = cached
    checked = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=details or None,
    )
    return checked, tuple(dict.fromkeys(flags))


@dataclass
class Meter:
    """One call in flight. Not thread-safe; one per request."""

    admitted: Admitted
    request_id: str
    route: str
    api_slug: str | None = None
    started: float = field(default_factory=time.monotonic)
    closed: bool = False
    # The machine payment that paid for this request, if one did (its usage record names it).
    machine_payment: str | None = field(default_factory=request_context.machine_payment)
    # Fields the caller adds to the usage record (a response-cache hit says so here).
    record_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> ModelInfo:
        return self.admitted.model

    @property
    def output_limit(self) -> int:
        """The output limit to send the vendor: exactly what was reserved."""
        return self.admitted.output_limit

    @property
    def reserved_usage(self) -> Usage:
        """The call's worst case as usage: billed when the vendor's own count cannot be had."""
        a = self.admitted
        return Usage(
            prompt_tokens=a.prompt_tokens,
            completion_tokens=a.output_limit,
            total_tokens=a.prompt_tokens + a.output_limit,
        )

    def settle(
        self,
        usage: Usage,
        *,
        source: UsageSource = "provider",
        status: int = 200,
        flags: tuple[Flag, ...] = (),
    ) -> Usage:
        """The call produced output: bill it. Returns the usage billed (checked)."""
        billed, found = checked_usage(usage, self.admitted)
        if self.admitted.capped:
            found = ("output_capped", *found)
        self._close(billed, source=source, status=status, flags=(*flags, *found))
        return billed

    def settle_abandoned(self, seen_completion_tokens: int) -> Usage:
        """The client went away and the vendor's own count could not be had: bill what was
        reserved, or what the vendor was seen to generate if more, never less than it may charge."""
        reserved = self.reserved_usage
        completion = max(reserved.completion_tokens, seen_completion_tokens)
        usage = reserved.model_copy(
            update={"completion_tokens": completion, "total_tokens": reserved.prompt_tokens + completion}
        )
        return self.settle(usage, source="reservation", flags=("client_disconnected", "billed_reservation"))

    def fail(self, error: GatewayError) -> None:
        """The call produced nothing billable: its reservation goes back, the failure is recorded."""
        self._close(Usage(), source="none", status=error.status, error_code=error.code)

    def _close(
        self,
        usage: Usage,
        *,
        source: UsageSource,
        status: int,
        flags: tuple[Flag, ...] = (),
        error_code: str | None = None,
    ) -> None:
        if self.closed:
            raise RuntimeError(f"meter for {self.request_id} already closed")
        self.closed = True
        a = self.admitted
        cost = cost_micro_usd(a.model, usage)
        tokens = usage.prompt_tokens + usage.completion_tokens
        consumed = _consumed(a, tokens, cost)
        credit_tokens = tokens if a.funding == "credits" else 0
        view = held_leases.finish(a.lease_id, a.seq, consumed, credit_tokens)
        if view is not None and status < 400:
            # A plain answer's headers follow its real usage; a stream already sent the reservation's.
            request_context.add_headers(billing_headers(a.terms, view, a.funding, capped_output=_capped(a)))
        metered = a.funding == "plan" and a.terms.plan.meter_event_name is not None
        latency_ms = int((time.monotonic() - self.started) * 1000)
        created_at_ms = clock.now_ms()

        def write() -> None:
            # After the answer when the server allows it: the lease already covered the worst case.
            uncollected = held_leases.collect(a.lease_id, a.seq)
            record = UsageRecord(
                request_id=self.request_id,
                team_id=a.terms.team_id,
                key_id=a.terms.key.key_id,
                model=a.model.id,
                provider=a.model.provider,
                route=self.route,
                status=status,
                error_code=error_code,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost_micro_usd=cost,
                latency_ms=latency_ms,
                usage_source=source,
                created_at_ms=created_at_ms,
                api_slug=self.api_slug,
                funding=a.funding,
                uncollected_micro_usd=uncollected,
                lease_id=a.lease_id,
                lease_seq=a.seq,
                output_limit=a.output_limit or None,
                flags=tuple(sorted(set(flags))),
                meter_event_name=a.terms.plan.meter_event_name if metered else None,
                stripe_customer_id=a.terms.state.customer_id if metered else None,
                machine_payment=self.machine_payment,
                **self.record_fields,
            )
            try:
                usage_records.record(record)
            except Exception:
                # Kept by the lease and written again at its next maintenance: nothing is lost
                # while this container lives (a dead one's lease is reclaimed from records).
                logger.exception("usage record write failed; kept for a retry")
                held_leases.record_written(a.lease_id, a.seq, record)
            else:
                held_leases.record_written(a.lease_id, a.seq, None)
            held_leases.maintain(a.lease_id)

        request_context.defer(write)


def _capped(a: Admitted) -> int | None:
    return a.output_limit if a.capped else None


def _consumed(a: Admitted, tokens: int, cost: int) -> Amounts:
    key = cost if a.key_budget else 0
    if a.funding == "credits":
        return Amounts(credits=cost, key=key)
    return Amounts(tokens=tokens, spend=cost, key=key)


def open_meter(
    terms: Terms,
    model: ModelInfo,
    estimate: Estimate,
    *,
    request_id: str,
    route: str,
    api_slug: str | None = None,
) -> Meter:
    """Admit a call before any provider is contacted (see :func:`aigw.billing.admission.admit`).

    Raises 402 (:class:`~aigw.errors.PaymentRequired`) for money reasons, 429 for rate limits,
    403 for a model outside the plan and 503 when the table cannot be reached."""
    admitted = admission.admit(terms, model, estimate)
    return Meter(admitted=admitted, request_id=request_id, route=route, api_slug=api_slug)
