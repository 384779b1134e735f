"""Metering: every model call is admitted, then settled or failed, exactly once.

:func:`open_meter` admits a call before the provider is contacted: it checks the team's
entitlement and reserves the call's worst case (prompt estimate plus its output limit, in
tokens and in micro-USD) with ONE conditional UpdateItem on the team's billing item, which
also counts the per-minute rate window. ``settle`` replaces the reservation with what the call
really used and writes the usage record in ONE TransactWriteItems, so counters and records
agree; ``fail`` releases the reservation and records the failure the same way. The
reservation's amounts ride along on the item as a hold (:mod:`aigw.reservations`), so a call
that dies before settling is released after its expiry instead of being held forever.

A warm container with a cached key and a cached entitlement therefore makes two DynamoDB round
trips per call. Under concurrency the limits hold: a reservation only succeeds if the counter
plus its worst case stays within the limit, so usage can pass a limit only by what calls
really used beyond their own reservation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aigw import billing, clock, entitlements, notifications, ratelimit, request_context, reservations
from aigw.chat import ChatRequest, ModelInfo, Usage
from aigw.config import settings
from aigw.entitlements import BILLING_SK, BillingState, Decision, Funding
from aigw.errors import GatewayError, PermissionDenied, ServiceUnavailable
from aigw.keys import ApiKey
from aigw.plans import Plan
from aigw.pricing import cost_micro_usd
from aigw.table import ConditionFailed, Item, gateway_table, serialize
from aigw.teams import team_pk
from aigw.tokens import estimate_messages

_DAY_SECONDS = 86_400
_MAX_ATTEMPTS = 4

UsageSource = Literal["provider", "estimate", "none"]


class UsageRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    team_id: str
    key_id: str
    model: str
    provider: str
    route: str
    status: int
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_micro_usd: int = 0
    latency_ms: int = 0
    usage_source: UsageSource = "provider"
    created_at_ms: int
    api_slug: str | None = None
    funding: Funding | None = None
    uncollected_micro_usd: int = 0
    # Metered plans: the usage stream reports these records to Stripe Billing Meters.
    meter_event_name: str | None = None
    stripe_customer_id: str | None = None

    @classmethod
    def from_item(cls, item: Item) -> UsageRecord:
        fields = {k: item[k] for k in cls.model_fields if k in item}
        return cls.model_validate(fields)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _day(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def usage_pk(team_id: str, day: str) -> str:
    return f"USAGE#{team_id}#{day}"


API_ROUTE_PREFIX = "/apis/"


def api_slug_of(route: str) -> str | None:
    """The prompt API a route belongs to (``/apis/<slug>[/...]``), or None."""
    if not route.startswith(API_ROUTE_PREFIX):
        return None
    return route[len(API_ROUTE_PREFIX) :].split("/", 1)[0] or None


def api_usage_pk(slug: str) -> str:
    return f"APIUSAGE#{slug}"


def usage_item(record: UsageRecord) -> dict[str, Any]:
    expires = record.created_at_ms // 1000 + settings().usage_retention_days * _DAY_SECONDS
    sk = f"{record.created_at_ms:014d}#{record.request_id}"
    item = {
        "pk": usage_pk(record.team_id, _day(record.created_at_ms)),
        "sk": sk,
        "type": "usage",
        "ttl": expires,
        **record.model_dump(exclude_none=True),
    }
    slug = record.api_slug or api_slug_of(record.route)
    if slug:
        # Prompt API calls are billed to the caller's team but reported to the API's owner:
        # gsi1 gathers them per API across every calling team.
        item.update(api_slug=slug, gsi1pk=api_usage_pk(slug), gsi1sk=sk)
    return item


def record(usage: UsageRecord) -> None:
    # Keyed by request id, so a retried write of the same call cannot count twice; the report
    # aggregates follow from the table stream (aigw.report_aggregation), once per record.
    try:
        gateway_table().put(usage_item(usage), condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return  # already recorded by an earlier attempt of this very write


def records_for_day(team_id: str, day: str) -> list[UsageRecord]:
    items = gateway_table().query("pk = :p", {":p": usage_pk(team_id, day)}, consistent=True)
    return [UsageRecord.from_item(i) for i in items]


# ---- reservations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    """What :func:`open_meter` held for one call, to be settled or released."""

    team_id: str
    funding: Funding
    plan: Plan
    tokens: int
    cost: int
    period_start: int | None
    customer_id: str | None
    warning: str | None = None
    # The output limit the worst case was reserved with: exactly what goes upstream.
    output_tokens: int = 0

    @property
    def credits(self) -> int:
        return self.cost if self.funding == "credits" else 0


def output_limit(model: ModelInfo, request: ChatRequest, plan: Plan) -> int:
    """The output limit a call is reserved with and sent upstream with: the caller's, else the
    plan's default, never above what the model can produce."""
    return min(request.output_limit or plan.default_max_tokens, model.max_output_tokens)


def worst_case(model: ModelInfo, request: ChatRequest, plan: Plan) -> tuple[int, int]:
    """Tokens and micro-USD a call may use at most: a padded prompt estimate plus its output limit."""
    prompt = estimate_messages(request.messages) * 5 // 4 + 16
    output = output_limit(model, request, plan)
    cost = cost_micro_usd(model, Usage(prompt_tokens=prompt, completion_tokens=output))
    return prompt + output, cost


def _quota_refusal(state: BillingState, decision: Decision, tokens: int, cost: int) -> GatewayError | None:
    """The 402 for a reservation that does not fit, judged on the item as it was."""
    plan = decision.plan
    assert plan is not None
    if decision.funding == "credits":
        if state.credits < cost:
            return billing.payment_required(
                state,
                "credits_exhausted",
                f"This call may cost up to {cost} micro-USD; the team has {max(state.credits, 0)} "
                "micro-USD of prepaid credits left.",
            )
        return None
    if plan.monthly_tokens is not None and state.tok_held + tokens > plan.monthly_tokens:
        left = max(plan.monthly_tokens - state.tok_held, 0)
        return billing.payment_required(
            state,
            "quota_exhausted",
            f"This call may use up to {tokens} tokens; {left} of the plan's {plan.monthly_tokens} "
            "monthly tokens are left (lower max_tokens, or upgrade).",
            returns_at=state.period_end,
        )
    if plan.spend_cap_micro_usd is not None and state.spend_held + cost > plan.spend_cap_micro_usd:
        return billing.payment_required(
            state,
            "spend_cap_reached",
            f"This call may cost up to {cost} micro-USD; the plan's spend cap of "
            f"{plan.spend_cap_micro_usd} micro-USD for this period would be passed.",
            returns_at=state.period_end,
        )
    return None


def _reserve_update(
    state: BillingState, decision: Decision, hold: reservations.Hold, window: ratelimit.Window | None
) -> tuple[str, str, dict[str, Any]]:
    plan = decision.plan
    assert plan is not None
    tokens, cost = hold.tokens, hold.cost
    sets: list[str] = [f"{reservations.NAME} = :hold"]
    adds: list[str] = []
    conditions = ["rev = :rev"]
    values: dict[str, Any] = {":rev": state.rev, ":hold": hold.value()}
    if decision.funding == "credits":
        adds += ["credits :neg_cost", "credits_reserved :cost"]
        conditions.append("credits >= :cost")
        values.update({":neg_cost": -cost, ":cost": cost})
    else:
        adds += ["tok_held :tokens", "spend_held :cost"]
        values.update({":tokens": tokens, ":cost": cost})
        if plan.monthly_tokens is not None:
            conditions.append("tok_held <= :tok_max")
            values[":tok_max"] = plan.monthly_tokens - tokens
        if plan.spend_cap_micro_usd is not None:
            conditions.append("spend_held <= :spend_max")
            values[":spend_max"] = plan.spend_cap_micro_usd - cost
    if window is not None:
        w_sets, w_adds, w_conditions, w_values = window.clauses(plan, tokens)
        sets += w_sets
        adds += w_adds
        conditions += w_conditions
        values.update(w_values)
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets) + " "
    expression += "ADD " + ", ".join(adds)
    return expression, " AND ".join(conditions), values


def _refuse(state: BillingState, decision: Decision) -> GatewayError:
    if decision.code == "payment_failed" and not state.suspended_notified and state.sub_status == "past_due":
        # Grace ran out with no webhook to say so: the first refusal tells the operator, once.
        try:
            gateway_table().update(
                team_pk(state.team_id),
                BILLING_SK,
                expression="SET suspended_notified = :t",
                values={":t": True, ":rev": state.rev},
                condition="rev = :rev",
            )
            notifications.emit("Access Suspended", state.team_id, reason="grace_period_ended")
        except ConditionFailed:
            pass
    return billing.refusal_error(state, decision)


def reserve(
    key: ApiKey, model: ModelInfo, request: ChatRequest, *, request_id: str
) -> tuple[Reservation, BillingState]:
    team_id = key.team_id
    state = entitlements.cached_state(team_id)
    fresh = False
    window_fresh: bool | None = None
    overflow = False  # the plan's quota is spent: prepaid credits pay for what goes beyond
    for _ in range(_MAX_ATTEMPTS * 2):
        now = clock.now()
        if entitlements.needs_rollover(state, now):
            entitlements.roll_period(state, now)
            state, fresh = entitlements.remember(entitlements.load(team_id)), True
            continue
        decision = entitlements.decide(state, now)
        if not decision.allowed:
            if not fresh:  # never refuse on a cached view
                state, fresh = entitlements.remember(entitlements.load(team_id)), True
                continue
            raise _refuse(state, decision)
        if overflow and decision.funding == "plan":
            decision = replace(decision, funding="credits")
        plan = decision.plan
        assert plan is not None
        assert decision.funding is not None
        if not plan.allows_model(model.id):
            if not fresh:  # never refuse on a cached view: the plan may have just changed
                state, fresh = entitlements.remember(entitlements.load(team_id)), True
                continue
            raise PermissionDenied(
                f"The team's plan '{plan.plan_id}' does not include model '{model.id}'; use a model "
                "it includes (GET /v1/models lists them) or move the team to a plan that does",
                code="model_not_in_plan",
                param="model",
            )
        tokens, cost = worst_case(model, request, plan)
        window: ratelimit.Window | None = None
        if ratelimit.applies(plan):
            ratelimit.check_request_size(plan, tokens, now)
            minute = ratelimit.minute_of(now)
            if window_fresh is None:
                window_fresh = state.rl_min != minute
            window = ratelimit.Window(minute, window_fresh)
        hold = reservations.new_hold(request_id, decision.funding, tokens, cost)
        expression, condition, values = _reserve_update(state, decision, hold, window)
        try:
            new = gateway_table().update(
                team_pk(team_id),
                BILLING_SK,
                expression=expression,
                values=values,
                names={reservations.NAME: reservations.attribute(request_id)},
                condition=condition,
                return_new=True,
                old_on_failure=True,
            )
        except ConditionFailed as exc:
            old = BillingState.from_item(team_id, exc.item)
            if exc.item is None or old.rev != state.rev:
                # The entitlement changed (or the item is new): decide again on what is there now.
                if exc.item is None:
                    entitlements.ensure_item(team_id)
                    old = entitlements.load(team_id)
                state, fresh, window_fresh = entitlements.remember(old), True, None
                continue
            if window is not None:
                limited = ratelimit.exceeded(plan, old.rl_min, old.rl_req, old.rl_tok, tokens, now)
                if limited is not None:
                    raise limited from None
                if (old.rl_min != ratelimit.minute_of(now)) != window.fresh:
                    window_fresh = not window.fresh
                    state = old
                    continue
            refusal = _quota_refusal(old, decision, tokens, cost)
            if refusal is not None and decision.funding == "plan" and old.credits >= cost:
                state, overflow = old, True
                continue
            if refusal is not None:
                raise refusal from None
            state, window_fresh = old, None  # a counter moved under us: try again
            continue
        # The item is in hand: give back what dead calls still hold (a write only if there are any).
        reservations.release_expired(team_id, new, now)
        after = entitlements.remember(BillingState.from_item(team_id, new))
        reservation = Reservation(
            team_id=team_id,
            funding=decision.funding,
            plan=plan,
            tokens=tokens,
            cost=cost,
            period_start=after.period_start,
            customer_id=after.customer_id,
            warning=decision.warning,
            output_tokens=output_limit(model, request, plan),
        )
        return reservation, after
    raise ServiceUnavailable(
        "The team's billing state kept changing; retry shortly",
        code="admission_contended",
        headers={"Retry-After": "1"},
    )


# ---- the meter --------------------------------------------------------------------------------


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
            **fields,
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
            expression += f" REMOVE {reservations.NAME}"
            conditions.append(f"attribute_exists({reservations.NAME})")
            update["ExpressionAttributeNames"] = {reservations.NAME: reservations.attribute(self.request_id)}
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        update.update(UpdateExpression=expression, ExpressionAttributeValues=serialize(adds))
        put = {"Item": serialize(usage_item(usage)), "ConditionExpression": "attribute_not_exists(pk)"}
        try:
            # Two items only: the report aggregates follow from the record through the table
            # stream (aigw.report_aggregation), off the request path.
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
        return reservations.attribute(self.request_id) in (item or {})

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


def open_meter(key: ApiKey, model: ModelInfo, request: ChatRequest, *, request_id: str, route: str) -> Meter:
    """Admit a call before any provider is contacted: check the entitlement, reserve its worst case.

    Raises 402 (:class:`~aigw.errors.PaymentRequired`) for money reasons and 429 for rate limits.
    """
    reservation, state = reserve(key, model, request, request_id=request_id)
    return Meter(
        key=key, model=model, request_id=request_id, route=route, reservation=reservation, state=state
    )
