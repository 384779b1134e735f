"""The team's billing account: the only module that reads or writes ``TEAM#<team>`` / ``BILLING``.

One small item per team carries the entitlement state written by Stripe webhooks and admins,
and the period counters: ``tok_used``/``spend_used`` (what calls used this period),
``tok_held``/``spend_held`` (used plus what budget leases still hold), ``credits`` (prepaid
credits not leased), ``credits_reserved`` (credits leased). No call writes it: budget leases
(:mod:`aigw.billing.leases`) take slices from it and hand back what their calls used, so its
size is fixed and its write rate is the leases', not the calls' (decision 19). ``rev`` changes
whenever the entitlement changes; a lease is granted or topped up only on condition of the
``rev`` it was decided on. The rules deciding what the state allows are in
:mod:`aigw.billing.rules`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from aigw import clock
from aigw.billing.budget import Amounts
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


def key(team_id: str) -> dict[str, Any]:
    """The item's key, serialised for a transaction operation."""
    return serialize({"pk": team_pk(team_id), "sk": BILLING_SK})


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


# ---- what budget leases change -------------------------------------------------------------


def lease_change(
    team_id: str,
    *,
    consumed: Amounts,
    credit_tokens: int = 0,
    outstanding: Amounts,
    rev: int | None = None,
    plan: Plan | None = None,
) -> dict[str, Any]:
    """The transaction operation that moves a lease's amounts on the team's item.

    ``consumed``: what the lease's calls used (plan tokens and spend, credits), now counted as
    used. ``outstanding``: the change of what the lease holds (positive: a slice taken, negative:
    a slice handed back; consumption leaves the lease's holding too, so a flush that hands
    nothing back has ``outstanding == -consumed``). ``rev``: grant only on the entitlement the
    lease was decided on. Where the team's holding grows, the plan's limits and the credit
    balance are conditions, so a refused grant says why (the item comes back with the refusal).
    """
    held_tok = consumed.tokens + outstanding.tokens
    held_spend = consumed.spend + outstanding.spend
    taken_credits = consumed.credits + outstanding.credits
    values: dict[str, Any] = {
        ":ut": consumed.tokens,
        ":ht": held_tok,
        ":us": consumed.spend,
        ":hs": held_spend,
        ":c": -taken_credits,
        ":rc": outstanding.credits,
        ":sc": consumed.credits,
        ":ct": credit_tokens,
    }
    expression = (
        "ADD tok_used :ut, tok_held :ht, spend_used :us, spend_held :hs, credits :c, "
        "credits_reserved :rc, credits_spent :sc, credit_tokens :ct"
    )
    conditions = ["attribute_exists(pk)"]
    if rev is not None:
        conditions.append("rev = :rev")
        values[":rev"] = rev
    if plan is not None and plan.monthly_tokens is not None and held_tok > 0:
        conditions.append("tok_held <= :tmax")
        values[":tmax"] = plan.monthly_tokens - held_tok
    if plan is not None and plan.spend_cap_micro_usd is not None and held_spend > 0:
        conditions.append("spend_held <= :smax")
        values[":smax"] = plan.spend_cap_micro_usd - held_spend
    if taken_credits > 0:
        conditions.append("credits >= :need")
        values[":need"] = taken_credits
    return {
        "Update": {
            "Key": key(team_id),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": serialize(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def state_from(team_id: str, item: Item | None) -> BillingState:
    return BillingState.from_item(team_id, item)


def note_suspension(state: BillingState) -> bool:
    """Mark that the team was told its access ended (grace ran out with no webhook to say so);
    True the first time only."""
    try:
        gateway_table().update(
            team_pk(state.team_id),
            BILLING_SK,
            expression="SET suspended_notified = :t",
            values={":t": True, ":f": False, ":rev": state.rev},
            condition="rev = :rev AND (attribute_not_exists(suspended_notified) OR suspended_notified = :f)",
        )
    except ConditionFailed:
        return False
    return True


def note_threshold(team_id: str, level: int, period_start: int) -> bool:
    """Mark a quota threshold (80 or 100 %) as announced for the period; True the first time."""
    attr = "warned_100" if level >= 100 else "warned_80"
    try:
        gateway_table().update(
            team_pk(team_id),
            BILLING_SK,
            expression=f"SET {attr} = :p",
            values={":p": period_start},
            condition=f"attribute_not_exists({attr}) OR {attr} <> :p",
        )
    except ConditionFailed:
        return False
    return True


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
    """What an admin (or the team) sees of a team's billing.

    ``tokens_used``/``spend_used_micro_usd`` count what calls used and their budget leases have
    handed back; ``tokens_reserved``/``credits_reserved_micro_usd`` what leases still hold (calls
    in flight, usage not handed back yet, and unused slices); ``*_remaining`` what is left
    beyond both: what a new call can still be admitted against."""

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
    tokens_remaining: int | None
    spend_used_micro_usd: int
    spend_reserved_micro_usd: int
    spend_remaining_micro_usd: int | None
    credits_micro_usd: int
    credits_reserved_micro_usd: int
    credits_spent_micro_usd: int
    monthly_tokens: int | None
    spend_cap_micro_usd: int | None


def summary(team_id: str) -> BillingSummary:
    item = gateway_table().get(team_pk(team_id), BILLING_SK, consistent=True)
    if item is None:
        ensure_item(team_id)
        item = gateway_table().get(team_pk(team_id), BILLING_SK, consistent=True)
    state = BillingState.from_item(team_id, item)
    decision = decide(state, clock.now())
    plan = decision.plan
    governing = plan if plan is not None and decision.funding == "plan" else None
    if governing is None and plan_id_for(state):
        governing = cached_plan(plan_id_for(state) or "")
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
        tokens_remaining=(
            max(governing.monthly_tokens - state.tok_held, 0)
            if governing and governing.monthly_tokens is not None
            else None
        ),
        spend_used_micro_usd=state.spend_used,
        spend_reserved_micro_usd=state.spend_held - state.spend_used,
        spend_remaining_micro_usd=(
            max(governing.spend_cap_micro_usd - state.spend_held, 0)
            if governing and governing.spend_cap_micro_usd is not None
            else None
        ),
        credits_micro_usd=state.credits,
        credits_reserved_micro_usd=state.credits_reserved,
        credits_spent_micro_usd=int((item or {}).get("credits_spent", 0)),
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


# ---- changes from Stripe events ------------------------------------------------------------


@dataclass
class Change:
    """What one event does to the team's billing item."""

    sets: dict[str, Any] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)
    adds: dict[str, int] = field(default_factory=dict)
    reset_counters: bool = False
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.sets or self.removes or self.adds or self.reset_counters or self.notes)

    def preview(self, state: BillingState) -> BillingState:
        update: dict[str, Any] = {**self.sets, **dict.fromkeys(self.removes)}
        for name, delta in self.adds.items():
            update[name] = getattr(state, name) + delta
        return state.model_copy(update=update)


def change_op(state: BillingState, change: Change) -> dict[str, Any]:
    """The transaction operation applying ``change`` to the team's billing item, on condition
    that the entitlement is still the one ``state`` was read at (``rev``)."""
    values: dict[str, Any] = {":rev": state.rev, ":one": 1}
    sets = ["rev = rev + :one"]
    for i, (name, value) in enumerate(change.sets.items()):
        if value is None:
            change.removes.append(name)
            continue
        sets.append(f"{name} = :s{i}")
        values[f":s{i}"] = value
    if change.reset_counters:
        sets += ["tok_held = tok_held - tok_used", "tok_used = :zero"]
        sets += ["spend_held = spend_held - spend_used", "spend_used = :zero"]
        values[":zero"] = 0
    expression = "SET " + ", ".join(sets)
    if change.adds:
        expression += " ADD " + ", ".join(f"{n} :a{i}" for i, n in enumerate(change.adds))
        values.update({f":a{i}": v for i, v in enumerate(change.adds.values())})
    removes = [r for r in dict.fromkeys(change.removes) if r not in change.sets or change.sets[r] is None]
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return {
        "Update": {
            "Key": serialize({"pk": team_pk(state.team_id), "sk": BILLING_SK}),
            "UpdateExpression": expression,
            "ConditionExpression": "rev = :rev",
            "ExpressionAttributeValues": serialize(values),
        }
    }
