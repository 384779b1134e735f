"""Admission: a call is let through only once its worst case is reserved.

:func:`reserve` runs before the provider is contacted: it checks the team's entitlement and
reserves the call's worst case (prompt estimate plus its output limit, in tokens and in
micro-USD) with ONE conditional UpdateItem on the team's billing item, which also counts the
per-minute rate window. The reservation's amounts ride along on the item as a hold
(:mod:`aigw.billing.holds`), so a call that dies before settling is released after its expiry
instead of being held forever. Under concurrency the limits hold: a reservation only succeeds
if the counter plus its worst case stays within the limit, so usage can pass a limit only by
what calls really used beyond their own reservation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aigw import clock
from aigw.billing import account, holds, notifications, ratelimit, rules, stripe_links
from aigw.billing.account import BILLING_SK
from aigw.billing.plans import Plan
from aigw.billing.pricing import cost_micro_usd
from aigw.billing.rules import BillingState, Decision, Funding
from aigw.chat import ChatRequest, ModelInfo, Usage
from aigw.errors import GatewayError, PermissionDenied, ServiceUnavailable
from aigw.keys import ApiKey
from aigw.table import ConditionFailed, gateway_table
from aigw.teams import team_pk
from aigw.tokens import estimate_messages

_MAX_ATTEMPTS = 4


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


@dataclass(frozen=True)
class Estimate:
    """The size of a call that is not a chat request (embeddings): its input's estimated
    tokens and, when it produces no output, no output limit at all. Chat calls pass their
    :class:`ChatRequest` and are estimated from it."""

    prompt_tokens: int
    output_limit: int | None = None
    produces_output: bool = True


def output_limit(model: ModelInfo, request: ChatRequest | Estimate, plan: Plan) -> int:
    """The output limit a call is reserved with and sent upstream with: the caller's, else the
    plan's default, never above what the model can produce."""
    if isinstance(request, Estimate) and not request.produces_output:
        return 0
    return min(request.output_limit or plan.default_max_tokens, model.max_output_tokens)


def worst_case(model: ModelInfo, request: ChatRequest | Estimate, plan: Plan) -> tuple[int, int]:
    """Tokens and micro-USD a call may use at most: a padded prompt estimate plus its output limit."""
    estimated = (
        request.prompt_tokens if isinstance(request, Estimate) else estimate_messages(request.messages)
    )
    prompt = estimated * 5 // 4 + 16
    output = output_limit(model, request, plan)
    cost = cost_micro_usd(model, Usage(prompt_tokens=prompt, completion_tokens=output))
    return prompt + output, cost


def _quota_refusal(state: BillingState, decision: Decision, tokens: int, cost: int) -> GatewayError | None:
    """The 402 for a reservation that does not fit, judged on the item as it was."""
    plan = decision.plan
    assert plan is not None
    if decision.funding == "credits":
        if state.credits < cost:
            return stripe_links.payment_required(
                state,
                "credits_exhausted",
                f"This call may cost up to {cost} micro-USD; the team has {max(state.credits, 0)} "
                "micro-USD of prepaid credits left.",
                needs_micro_usd=cost - max(state.credits, 0),
            )
        return None
    if plan.monthly_tokens is not None and state.tok_held + tokens > plan.monthly_tokens:
        left = max(plan.monthly_tokens - state.tok_held, 0)
        return stripe_links.payment_required(
            state,
            "quota_exhausted",
            f"This call may use up to {tokens} tokens; {left} of the plan's {plan.monthly_tokens} "
            "monthly tokens are left (lower max_tokens, or upgrade).",
            returns_at=state.period_end,
            needs_micro_usd=cost - max(state.credits, 0),
        )
    if plan.spend_cap_micro_usd is not None and state.spend_held + cost > plan.spend_cap_micro_usd:
        return stripe_links.payment_required(
            state,
            "spend_cap_reached",
            f"This call may cost up to {cost} micro-USD; the plan's spend cap of "
            f"{plan.spend_cap_micro_usd} micro-USD for this period would be passed.",
            returns_at=state.period_end,
        )
    return None


def _reserve_update(
    state: BillingState, decision: Decision, hold: holds.Hold, window: ratelimit.Window | None
) -> tuple[str, str, dict[str, Any]]:
    plan = decision.plan
    assert plan is not None
    tokens, cost = hold.tokens, hold.cost
    sets: list[str] = [f"{holds.NAME} = :hold"]
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
    return stripe_links.refusal_error(state, decision)


def reserve(
    key: ApiKey, model: ModelInfo, request: ChatRequest | Estimate, *, request_id: str
) -> tuple[Reservation, BillingState]:
    team_id = key.team_id
    state = account.cached_state(team_id)
    fresh = False
    window_fresh: bool | None = None
    overflow = False  # the plan's quota is spent: prepaid credits pay for what goes beyond
    for _ in range(_MAX_ATTEMPTS * 2):
        now = clock.now()
        if rules.needs_rollover(state, now):
            account.roll_period(state, now)
            state, fresh = account.remember(account.load(team_id)), True
            continue
        decision = rules.decide(state, now)
        if not decision.allowed:
            if not fresh:  # never refuse on a cached view
                state, fresh = account.remember(account.load(team_id)), True
                continue
            raise _refuse(state, decision)
        if overflow and decision.funding == "plan":
            decision = replace(decision, funding="credits")
        plan = decision.plan
        assert plan is not None
        assert decision.funding is not None
        if not plan.allows_model(model.id):
            if not fresh:  # never refuse on a cached view: the plan may have just changed
                state, fresh = account.remember(account.load(team_id)), True
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
        hold = holds.new_hold(request_id, decision.funding, tokens, cost)
        expression, condition, values = _reserve_update(state, decision, hold, window)
        try:
            new = gateway_table().update(
                team_pk(team_id),
                BILLING_SK,
                expression=expression,
                values=values,
                names={holds.NAME: holds.attribute(request_id)},
                condition=condition,
                return_new=True,
                old_on_failure=True,
            )
        except ConditionFailed as exc:
            old = BillingState.from_item(team_id, exc.item)
            if exc.item is None or old.rev != state.rev:
                # The entitlement changed (or the item is new): decide again on what is there now.
                if exc.item is None:
                    account.ensure_item(team_id)
                    old = account.load(team_id)
                state, fresh, window_fresh = account.remember(old), True, None
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
        holds.release_expired(team_id, new, now)
        after = account.remember(BillingState.from_item(team_id, new))
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
