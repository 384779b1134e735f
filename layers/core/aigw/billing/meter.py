"""The meter: every admitted call is settled or failed, exactly once.

:func:`open_meter` admits a call (:mod:`aigw.billing.admission`) before the provider is
contacted. ``settle`` replaces the reservation with what the call really used and writes the
usage record in ONE TransactWriteItems, so counters and records agree; ``fail`` releases the
reservation and records the failure the same way.

A warm container with a cached key and a cached entitlement therefore makes two DynamoDB round
trips per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aigw import clock, request_context
from aigw.billing import holds, notifications, ratelimit
from aigw.billing.account import BILLING_SK
from aigw.billing.admission import Estimate, Reservation, reserve
from aigw.billing.pricing import cost_micro_usd
from aigw.billing.rules import BillingState
from aigw.catalog import ModelInfo
from aigw.chat import ChatRequest, Usage
from aigw.errors import GatewayError
from aigw.keys import ApiKey
from aigw.table import ConditionFailed, gateway_table, serialize
from aigw.teams import team_pk
from aigw.usage.records import UsageRecord, UsageSource, record, usage_item


def _billing_headers(reservation: Reservation, state: BillingState, real_tokens: int, real_cost: int) -> None:
    plan = reservation.plan
    out: dict[str, str] = {}
    if reservation.funding == "credits":
        left = state.credits + reservation.credits - real_cost
        out["X-Billing-Credits-Remaining-Micro-Usd"] = str(max(left, 0))
    else:
        held_tokens = state.tok_held - reservation.tokens + real_tokens
        held_spend = state.spend_held - reservation.cost + real_cost
        if plan.monthly_tokens is not None:
            out["X-Billing-Quota-Tokens-Limit"] = str(plan.monthly_tokens)
            out["X-Billing-Quota-Tokens-Remaining"] = str(max(plan.monthly_tokens - held_tokens, 0))
        if plan.spend_cap_micro_usd is not None:
            out["X-Billing-Spend-Remaining-Micro-Usd"] = str(max(plan.spend_cap_micro_usd - held_spend, 0))
        if state.period_end is not None:
            out["X-Billing-Period-End"] = clock.iso(state.period_end)
    if reservation.warning:
        out["X-Billing-Warning"] = reservation.warning
    elif reservation.funding == "plan" and plan.monthly_tokens:
        left = int(out["X-Billing-Quota-Tokens-Remaining"])
        if left * 5 <= plan.monthly_tokens:  # 80 % used: say so before the 402 does
            out["X-Billing-Warning"] = f"quota_low; {left} of {plan.monthly_tokens} monthly tokens left"
    out.update(ratelimit.headers(plan, state.rl_req, state.rl_tok, clock.now()))
    request_context.add_headers(out)


def _thresholds(reservation: Reservation, state: BillingState, real_tokens: int, real_cost: int) -> None:
    """Quota 80 % and 100 % notifications, once per period each."""
    plan = reservation.plan
    if reservation.funding != "plan" or state.period_start is None:
        return
    shares = []
    if plan.monthly_tokens:
        shares.append((state.tok_used + real_tokens) / plan.monthly_tokens)
    if plan.spend_cap_micro_usd:
        shares.append((state.spend_used + real_cost) / plan.spend_cap_micro_usd)
    share = max(shares, default=0.0)
    for level, attr, sent in ((100, "warned_100", state.warned_100), (80, "warned_80", state.warned_80)):
        if share * 100 < level or sent == state.period_start:
            continue
        try:
            gateway_table().update(
                team_pk(reservation.team_id),
                BILLING_SK,
                expression=f"SET {attr} = :p",
                values={":p": state.period_start},
                condition=f"attribute_not_exists({attr}) OR {attr} <> :p",
            )
        except ConditionFailed:
            return
        notifications.emit(
            "Quota Threshold Reached", reservation.team_id, percent=level, plan_id=plan.plan_id
        )
        return


@dataclass
class Meter:
    """One call in flight. Not thread-safe; one per request."""

    key: ApiKey
    model: ModelInfo
    request_id: str
    route: str
    reservation: Reservation | None = None
    state: BillingState | None = None
    started: float = field(default_factory=time.monotonic)
    closed: bool = False
    # The machine payment that paid for this request, if one did (its usage record names it).
    machine_payment: str | None = field(default_factory=request_context.machine_payment)
    # Fields the caller adds to the usage record (a response-cache hit says so here).
    record_fields: dict[str, Any] = field(default_factory=dict)

    def _usage(self, **fields: Any) -> UsageRecord:
        if self.closed:
            raise RuntimeError(f"meter for {self.request_id} already closed")
        self.closed = True
        return UsageRecord(
            request_id=self.request_id,
            team_id=self.key.team_id,
            key_id=self.key.key_id,
            model=self.model.id,
            provider=self.model.provider,
            route=self.route,
            latency_ms=int((time.monotonic() - self.started) * 1000),
            created_at_ms=clock.now_ms(),
            funding=self.reservation.funding if self.reservation else None,
            machine_payment=self.machine_payment,
            **{**self.record_fields, **fields},
        )

    def _commit(
        self, usage: UsageRecord, tokens: int, cost: int, *, collect_overrun: bool = True, held: bool = True
    ) -> None:
        """Counters and the usage record in one transaction: they cannot disagree.

        ``held``: the reservation is still on the item; the transaction replaces it with the real
        usage on condition that it is. ``held=False`` (released as dead before this settle) adds
        the real usage alone."""
        res = self.reservation
        if res is None:
            record(usage)
            return
        res_tokens, res_cost, res_credits = (res.tokens, res.cost, res.credits) if held else (0, 0, 0)
        update: dict[str, Any] = {"Key": serialize({"pk": team_pk(res.team_id), "sk": BILLING_SK})}
        conditions: list[str] = []
        if res.funding == "plan":
            # The plan's period counters: the reservation is replaced by the real usage.
            adds = {":dt": tokens - res_tokens, ":t": tokens, ":dc": cost - res_cost, ":c": cost}
            expression = "ADD tok_held :dt, tok_used :t, spend_held :dc, spend_used :c"
        else:
            # Reserved credits are returned and the real cost taken: net change reserved - cost.
            charged = cost if collect_overrun else min(cost, res_credits)
            adds = {":dcr": res_credits - charged, ":rcr": -res_credits, ":spent": charged, ":t": tokens}
            expression = "ADD credits :dcr, credits_reserved :rcr, credits_spent :spent, credit_tokens :t"
            if charged > res_credits:
                adds[":over"] = charged - res_credits
                conditions.append("credits >= :over")
            if charged < cost:
                usage = usage.model_copy(update={"uncollected_micro_usd": cost - charged})
        if held:
            expression += f" REMOVE {holds.NAME}"
            conditions.append(f"attribute_exists({holds.NAME})")
            update["ExpressionAttributeNames"] = {holds.NAME: holds.attribute(self.request_id)}
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        update.update(UpdateExpression=expression, ExpressionAttributeValues=serialize(adds))
        put = {"Item": serialize(usage_item(usage)), "ConditionExpression": "attribute_not_exists(pk)"}
        try:
            # Two items only: the report aggregates follow from the record through the table
            # stream (aigw.usage.aggregation), off the request path.
            gateway_table().transact([{"Update": update}, {"Put": put}])
        except ConditionFailed as exc:
            if not (exc.reasons and exc.reasons[0] == "ConditionalCheckFailed"):
                raise
            if held and not self._still_held():
                # Released as dead while this call was still running: charge its usage alone.
                self._commit(usage, tokens, cost, collect_overrun=collect_overrun, held=False)
                return
            if collect_overrun:
                # The call cost more than reserved and the credits cannot cover it: never go
                # below zero; record what could not be collected.
                self._commit(usage, tokens, cost, collect_overrun=False, held=held)
                return
            raise

    def _still_held(self) -> bool:
        assert self.reservation is not None
        item = gateway_table().get(team_pk(self.reservation.team_id), BILLING_SK, consistent=True)
        return holds.attribute(self.request_id) in (item or {})

    def settle(self, usage: Usage, *, source: UsageSource = "provider", status: int = 200) -> UsageRecord:
        """The call produced output: replace the reservation with its real tokens and cost.

        The record and the billing headers are ready at once; the write runs after the answer
        is sent where the server supports it (:func:`aigw.request_context.defer`)."""
        cost = cost_micro_usd(self.model, usage)
        res = self.reservation
        metered = res is not None and res.funding == "plan" and res.plan.meter_event_name
        record_ = self._usage(
            status=status,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_micro_usd=cost,
            usage_source=source,
            meter_event_name=res.plan.meter_event_name if res is not None and metered else None,
            stripe_customer_id=res.customer_id if res is not None and metered else None,
        )
        tokens = usage.prompt_tokens + usage.completion_tokens
        state = self.state
        if res is not None and state is not None:
            _billing_headers(res, state, tokens, cost)

        def commit() -> None:
            # After the answer when the server allows it: the hold already covers the worst
            # case, so the caller need not wait for its replacement by the real usage.
            self._commit(record_, tokens, cost)
            if res is not None and state is not None:
                _thresholds(res, state, tokens, cost)

        request_context.defer(commit)
        return record_

    def fail(self, error: GatewayError) -> UsageRecord:
        """The call produced nothing billable: release the reservation, record the failure."""
        record_ = self._usage(status=error.status, error_code=error.code, usage_source="none")
        self._commit(record_, 0, 0)
        return record_


def open_meter(
    key: ApiKey, model: ModelInfo, request: ChatRequest | Estimate, *, request_id: str, route: str
) -> Meter:
    """Admit a call before any provider is contacted: check the entitlement, reserve its worst case.

    Raises 402 (:class:`~aigw.errors.PaymentRequired`) for money reasons and 429 for rate limits.
    """
    reservation, state = reserve(key, model, request, request_id=request_id)
    return Meter(
        key=key, model=model, request_id=request_id, route=route, reservation=reservation, state=state
    )
