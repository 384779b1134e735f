"""The team's billing account: the only module that reads or writes ``TEAM#<team>`` / ``BILLING``.

One item per team carries both the entitlement state written by Stripe webhooks and the period
counters the hot path reserves against, so that admission is a single conditional write (see
:mod:`aigw.billing.admission`). ``rev`` changes whenever the entitlement changes; every
reservation is conditional on the ``rev`` it was decided on, so a cached view can be stale but
never wrong. The rules deciding what the state allows are in :mod:`aigw.billing.rules`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from pydantic import BaseModel

from aigw import clock
from aigw.billing.plans import Plan, cached_plan, subscription_plan
from aigw.billing.rules import BillingState, Funding, decide, month_bounds, plan_id_for
from aigw.config import settings
from aigw.table import ConditionFailed, Item, gateway_table, serialize
from aigw.teams import team_pk

BILLING_SK = "BILLING"


def governing_plan(team_id: str) -> Plan | None:
    """The plan whose model allow-list applies to the team now (None: no restriction known).

    From the warm-container view: it shapes ``/v1/models`` and the fallback chain; the
    authoritative check is the reservation's, which re-reads before it refuses."""
    state = cached_state(team_id)
    decision = decide(state, clock.now())
    if decision.plan is not None:
        return decision.plan
    plan_id = plan_id_for(state)
    return cached_plan(plan_id) if plan_id else None


def rollover_expression() -> str:
    # Reservations in flight stay held; what was used belongs to the old period.
    return (
        "SET period_start = :ps, period_end = :pe, tok_held = tok_held - tok_used, tok_used = :zero, "
        "spend_held = spend_held - spend_used, spend_used = :zero, rev = rev + :one"
    )


# ---- the item -----------------------------------------------------------------------------


def _initial_item(team_id: str, now: int) -> Item:
    start, end = month_bounds(now)
    return {
        "pk": team_pk(team_id),
        "sk": BILLING_SK,
        "type": "billing",
        "team_id": team_id,
        "rev": 1,
        "period_start": start,
        "period_end": end,
        "tok_held": 0,
        "tok_used": 0,
        "spend_held": 0,
        "spend_used": 0,
        "credits": 0,
        "credits_reserved": 0,
    }


def ensure_item(team_id: str) -> None:
    """Create the team's billing item if missing (teams predating billing, or new teams)."""
    with contextlib.suppress(ConditionFailed):
        gateway_table().put(_initial_item(team_id, clock.now()), condition="attribute_not_exists(pk)")


def load(team_id: str) -> BillingState:
    item = gateway_table().get(team_pk(team_id), BILLING_SK, consistent=True)
    if item is None:
        ensure_item(team_id)
        item = gateway_table().get(team_pk(team_id), BILLING_SK, consistent=True)
    return BillingState.from_item(team_id, item)


def roll_period(state: BillingState, now: int) -> None:
    start, end = month_bounds(now)
    # A lost race means someone else rolled it, or the entitlement changed: the caller reloads.
    with contextlib.suppress(ConditionFailed):
        gateway_table().update(
            team_pk(state.team_id),
            BILLING_SK,
            expression=rollover_expression(),
            values={":ps": start, ":pe": end, ":zero": 0, ":one": 1, ":rev": state.rev},
            condition="rev = :rev",
        )


# ---- warm-container cache -------------------------------------------------------------------

_cache: dict[str, tuple[float, BillingState]] = {}
_lock = threading.Lock()


def cached_state(team_id: str) -> BillingState:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(team_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    return remember(load(team_id))


def remember(state: BillingState) -> BillingState:
    with _lock:
        _cache[state.team_id] = (time.monotonic() + max(settings().key_cache_seconds, 1), state)
    return state


def forget(team_id: str | None = None) -> None:
    with _lock:
        if team_id is None:
            _cache.clear()
        else:
            _cache.pop(team_id, None)


# ---- administration ---------------------------------------------------------------------------


class BillingSummary(BaseModel):
    """What an admin (or the team) sees of a team's billing."""

    team_id: str
    allowed: bool
    funding: Funding | None
    refusal_code: str | None
    plan_id: str | None
    subscription_id: str | None
    subscription_status: str | None
    customer_id: str | None
    grace_until: str | None
    period_start: str | None
    period_end: str | None
    tokens_used: int
    tokens_reserved: int
    spend_used_micro_usd: int
    credits_micro_usd: int
    credits_reserved_micro_usd: int
    monthly_tokens: int | None
    spend_cap_micro_usd: int | None


def summary(team_id: str) -> BillingSummary:
    state = load(team_id)
    decision = decide(state, clock.now())
    plan = decision.plan
    grace = state.grace_until()
    return BillingSummary(
        team_id=team_id,
        allowed=decision.allowed,
        funding=decision.funding,
        refusal_code=decision.code,
        plan_id=plan.plan_id if plan else plan_id_for(state),
        subscription_id=state.sub_id,
        subscription_status=state.sub_status,
        customer_id=state.customer_id,
        grace_until=clock.iso(grace) if grace else None,
        period_start=clock.iso(state.period_start) if state.period_start else None,
        period_end=clock.iso(state.period_end) if state.period_end else None,
        tokens_used=state.tok_used,
        tokens_reserved=state.tok_held - state.tok_used,
        spend_used_micro_usd=state.spend_used,
        credits_micro_usd=state.credits,
        credits_reserved_micro_usd=state.credits_reserved,
        monthly_tokens=plan.monthly_tokens if plan else None,
        spend_cap_micro_usd=plan.spend_cap_micro_usd if plan else None,
    )


def assign_plan(team_id: str, plan_id: str | None) -> BillingSummary:
    """An admin-granted plan (no Stripe); ``None`` removes it. A Stripe subscription still wins.
    A credit pack is refused (400): credits are bought or granted, never assigned."""
    if plan_id is not None:
        subscription_plan(plan_id)
    ensure_item(team_id)
    values: dict[str, Any]
    if plan_id is None:
        expression, values = "REMOVE manual_plan_id SET rev = rev + :one", {":one": 1}
    else:
        expression, values = "SET manual_plan_id = :p, rev = rev + :one", {":p": plan_id, ":one": 1}
    gateway_table().update(team_pk(team_id), BILLING_SK, expression=expression, values=values)
    forget(team_id)
    return summary(team_id)


def credit_op(team_id: str, micro_usd: int, *, plan_id: str | None = None) -> dict[str, Any]:
    """The credit grant as one TransactWriteItems operation, for callers that must write it
    together with their own record (a machine payment's claim and audit record). The item
    must exist (:func:`ensure_item`)."""
    expression = "ADD credits :c SET credits_bought = :t, rev = rev + :one"
    values: dict[str, Any] = {":c": micro_usd, ":t": True, ":one": 1}
    if plan_id is not None:
        expression += ", credit_plan_id = :p"
        values[":p"] = plan_id
    return {
        "Update": {
            "Key": serialize({"pk": team_pk(team_id), "sk": BILLING_SK}),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": serialize(values),
        }
    }


def grant_credits(team_id: str, micro_usd: int) -> BillingSummary:
    ensure_item(team_id)
    gateway_table().transact([credit_op(team_id, micro_usd)])
    forget(team_id)
    return summary(team_id)


def revoke_links(team_id: str) -> int:
    """Invalidate every billing link issued to the team so far; returns the new generation.
    (Not an entitlement change: ``rev`` stays, reservations in flight are not disturbed.)"""
    ensure_item(team_id)
    item = gateway_table().update(
        team_pk(team_id),
        BILLING_SK,
        expression="ADD link_gen :one",
        values={":one": 1},
        return_new=True,
    )
    forget(team_id)
    assert item is not None
    return int(item["link_gen"])
