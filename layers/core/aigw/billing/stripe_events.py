"""Stripe webhook events turned into entitlement changes, each exactly once, never backwards,
and only ever for the team that owns the Stripe customer.

Exactly once: the event id is written (``STRIPE_EVENT#<id>``, conditional on not existing) in
the same DynamoDB transaction as the change it causes, so a redelivered event changes nothing.

Never backwards (the ordering rule): a subscription's state is taken from the newest event
about it, ordered by the event's ``created`` second; within the same second, a state later in
the subscription's life wins (incomplete < trialing < active < past_due < unpaid/paused <
canceled). ``canceled``/``incomplete_expired`` are final for that subscription id, and a
cancellation of an older subscription never overrides a live newer one. Payment events
(``invoice.*``) are ordered by ``created`` among themselves. An ``invoice.paid`` for the team's
subscription also counts as a subscription event saying ``active`` at its ``created`` second:
it ends a payment failure (``past_due``/``unpaid``/``incomplete``) that a subscription event of
that second or older reported, until a newer subscription event says otherwise. It is also
remembered: a failure status of that subscription created at or before the payment, arriving
later, is read as ``active`` (settled). A paid invoice older than the one that failed ends
nothing. Period counters reset only when a subscription event brings a later
``current_period_start``.

One owner per customer: the first event that links a Stripe customer to a team writes
``CUSTOMER#<cus>`` (conditional on not existing) in the same transaction. From then on the
mapping decides the team; an event whose metadata or ``client_reference_id`` names another
team, or that brings a different customer for a team that already has one, changes nothing
and answers ``conflict`` (logged, and an operator notification).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, ValidationError

from aigw import clock
from aigw.billing import account, notifications, rules
from aigw.billing.config import billing_settings
from aigw.billing.plans import cached_plan
from aigw.billing.rules import INACTIVE, PAYMENT_REFUSALS, BillingState
from aigw.errors import NotFound, ServiceUnavailable
from aigw.table import ConditionFailed, gateway_table, serialize
from aigw.teams import get_team

logger = Logger(service="aigw")

_EVENT_TTL_SECONDS = 40 * 86_400  # Stripe retries for up to three days
_RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 4,
    "incomplete_expired": 5,
    "canceled": 5,
}
SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
    }
)
INVOICE_FAILURES = frozenset({"invoice.payment_failed", "invoice.payment_action_required"})
CHECKOUT_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})

HANDLED = SUBSCRIPTION_EVENTS | INVOICE_FAILURES | CHECKOUT_EVENTS | {"invoice.paid"}

# Subscription statuses that mean "not paid": a newer paid invoice of the subscription ends them.
PAYMENT_FAILURES = PAYMENT_REFUSALS | {"past_due"}

Outcome = Literal["applied", "unchanged", "duplicate", "ignored", "conflict"]


class StripeEvent(BaseModel):
    """The envelope of a Stripe event (``object: "event"``), as delivered to a webhook."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    created: int
    data: dict[str, Any]

    @property
    def object(self) -> dict[str, Any]:
        obj = self.data.get("object")
        return obj if isinstance(obj, dict) else {}


def _id(value: Any) -> str | None:
    """Stripe fields that are an id, or the expanded object carrying it."""
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found else None
    return str(value) if value else None


def _metadata(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        return dict(obj["metadata"])
    return {}


# ---- subscriptions ------------------------------------------------------------------------------


def _plan_of(subscription: dict[str, Any]) -> str | None:
    for item in (subscription.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        if price.get("lookup_key"):
            return str(price["lookup_key"])
        named = _metadata(price).get("aigw_plan") or _metadata(price.get("product")).get("aigw_plan")
        if named:
            return str(named)
    return None


def _period_of(subscription: dict[str, Any]) -> tuple[int | None, int | None]:
    # Newer API versions carry the period on subscription items, older ones on the subscription.
    items = (subscription.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    start = min(starts) if starts else subscription.get("current_period_start")
    end = max(ends) if ends else subscription.get("current_period_end")
    return (int(start) if start else None, int(end) if end else None)


def _is_stale(state: BillingState, sub_id: str, status: str, created: int) -> bool:
    if state.sub_id is None:
        return False
    if state.sub_id == sub_id:
        if state.sub_status in INACTIVE:
            return True  # final for this subscription
        return (created, _RANK.get(status, 0)) < (state.sub_event_at, _RANK.get(state.sub_status or "", 0))
    if status in INACTIVE and state.sub_status not in INACTIVE:
        return True  # an older subscription ending does not end the live one
    return created < state.sub_event_at


def subscription_change(state: BillingState, event: StripeEvent) -> account.Change:
    sub = event.object
    sub_id, status = str(sub.get("id")), str(sub.get("status"))
    change = account.Change()
    if (
        status in PAYMENT_FAILURES
        and state.paid_sub_id == sub_id
        and event.created <= (state.sub_paid_at or 0)
    ):
        # Stripe reports a failure this subscription's payment (already seen, of the same second
        # or later) has settled: the subscription is active, whatever order they arrive in.
        status = "active"
    if event.type == "customer.subscription.trial_will_end":
        change.notes.append(("Trial Ending", {"trial_end": sub.get("trial_end"), "subscription": sub_id}))
    if _is_stale(state, sub_id, status, event.created):
        return change
    start, end = _period_of(sub)
    plan_id = _plan_of(sub)
    plan = cached_plan(plan_id) if plan_id else None
    if plan is not None and not plan.is_subscription:
        # The price maps to a credit pack: the subscription is recorded, but grants nothing
        # (rules.decide refuses a credit pack as the team's plan). The operator must fix the price.
        logger.warning(
            "subscription price maps to a credit pack",
            extra={"event": event.id, "subscription": sub_id, "plan": plan_id},
        )
    change.sets.update(
        sub_id=sub_id,
        sub_status=status,
        sub_plan_id=plan_id,
        sub_event_at=event.created,
    )
    if sub.get("trial_end"):
        change.sets["trial_end"] = int(sub["trial_end"])
    if start is not None and end is not None:
        change.sets.update(period_start=start, period_end=end)
        change.reset_counters = state.period_start is not None and start > state.period_start
    if status == "past_due" and state.sub_status != "past_due":
        if state.first_failed_at is None:
            change.sets["first_failed_at"] = event.created
        grace = (state.first_failed_at or event.created) + billing_settings().grace_seconds
        change.notes.append(("Grace Started", {"grace_until": clock.iso(grace), "subscription": sub_id}))
    if status in rules.ALLOWING:
        change.removes += ["first_failed_at", "failed_invoice_at"]
        change.sets["suspended_notified"] = False
    if status in INACTIVE and state.sub_status not in INACTIVE:
        # Without a live subscription the period is the calendar month again.
        change.sets.update(zip(("period_start", "period_end"), rules.month_bounds(clock.now()), strict=True))
    return change


# ---- invoices -------------------------------------------------------------------------------------


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    # API 2025-03-31 and later: parent.subscription_details.subscription; before: subscription.
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return _id(details.get("subscription")) or _id(invoice.get("subscription"))


def invoice_change(state: BillingState, event: StripeEvent) -> account.Change:
    invoice = event.object
    change = account.Change()
    failed = event.type in INVOICE_FAILURES
    detail = {"invoice": invoice.get("id"), "amount_due": invoice.get("amount_due")}
    note = (
        "Payment Action Required" if event.type == "invoice.payment_action_required" else "Payment Failed",
        {**detail, "hosted_invoice_url": invoice.get("hosted_invoice_url")},
    )
    sub_id = _invoice_subscription(invoice)
    if sub_id is None or (state.sub_id is not None and sub_id != state.sub_id):
        # Not an invoice of the team's subscription (a one-off, or another subscription of the
        # customer): it decides nothing about access; an operator still hears of a failure.
        if failed:
            change.notes.append(note)
        return change
    if event.created < state.payment_event_at:
        return change  # an older payment event: the newer one already decided
    change.sets["payment_event_at"] = event.created
    issued = int(invoice.get("created") or 0)
    if not failed:  # invoice.paid
        if state.failed_invoice_at is not None and issued < state.failed_invoice_at:
            return change  # an older invoice paid: the newer one's failure still stands
        if state.first_failed_at is not None:
            change.removes.append("first_failed_at")
            change.sets["suspended_notified"] = False
        change.removes.append("failed_invoice_at")
        # Remembered so that a failure status of this subscription reported at or before this
        # second, arriving later, is read as settled (see subscription_change).
        paid_at = max(event.created, state.sub_paid_at or 0) if state.paid_sub_id == sub_id else event.created
        change.sets.update(paid_sub_id=sub_id, sub_paid_at=paid_at)
        if state.sub_status in PAYMENT_FAILURES and event.created >= state.sub_event_at:
            # The payment Stripe was waiting for: the subscription is active again (as Stripe's
            # own customer.subscription.updated will say, whenever it arrives), until a newer
            # subscription event says otherwise. Within the same second the payment wins: a
            # failure cannot follow the payment that settles it in the same second, only a new
            # invoice's failure can, later.
            change.sets.update(sub_status="active", sub_event_at=event.created, suspended_notified=False)
            change.removes.append("first_failed_at")
        return change
    if state.first_failed_at is None:
        change.sets["first_failed_at"] = event.created
    change.sets["failed_invoice_at"] = max(issued, state.failed_invoice_at or 0)
    change.notes.append(note)
    return change


# ---- checkout -------------------------------------------------------------------------------------


def _credits_bought(session: dict[str, Any]) -> int:
    """Micro-USD of credits a paid one-off Checkout bought."""
    granted = _metadata(session).get("aigw_credits_micro_usd")
    if granted is not None and str(granted).isdigit() and int(granted) > 0:
        return int(granted)
    plan_id = _metadata(session).get("aigw_plan")
    plan = cached_plan(str(plan_id)) if plan_id else None
    if plan is not None and plan.kind == "credits" and plan.credits_micro_usd:
        return plan.credits_micro_usd
    if str(session.get("currency", "")).lower() == "usd":
        # Cents before tax buy as many micro-USD of credits (1 cent = 10,000 micro-USD).
        return int(session.get("amount_subtotal") or session.get("amount_total") or 0) * 10_000
    return 0


def checkout_change(state: BillingState, event: StripeEvent) -> account.Change:
    session = event.object
    change = account.Change()
    if session.get("mode") == "payment" and session.get("payment_status") == "paid":
        amount = _credits_bought(session)
        if amount > 0:
            change.adds["credits"] = amount
            change.sets["credits_bought"] = True
            plan_id = _metadata(session).get("aigw_plan")
            if plan_id:
                change.sets["credit_plan_id"] = str(plan_id)
            change.notes.append(("Credits Purchased", {"micro_usd": amount, "session": session.get("id")}))
    return change


# ---- dispatch ---------------------------------------------------------------------------------------


def _customer_team(customer: str | None) -> str | None:
    if not customer:
        return None
    item = gateway_table().get(f"CUSTOMER#{customer}", "META", consistent=True)
    return str(item["team_id"]) if item else None


def claimed_team(event: StripeEvent) -> str | None:
    """The team the event's own fields name (client_reference_id, metadata), if any."""
    obj = event.object
    if event.type in CHECKOUT_EVENTS:
        team = obj.get("client_reference_id") or _metadata(obj).get("team_id")
    elif event.type in SUBSCRIPTION_EVENTS:
        team = _metadata(obj).get("team_id")
    else:
        parent = (obj.get("parent") or {}).get("subscription_details") or obj.get("subscription_details")
        team = _metadata(parent).get("team_id")
    return str(team) if team else None


def _change_for(state: BillingState, event: StripeEvent) -> account.Change | None:
    if event.type in SUBSCRIPTION_EVENTS:
        return subscription_change(state, event)
    if event.type == "invoice.paid" or event.type in INVOICE_FAILURES:
        return invoice_change(state, event)
    if event.type in CHECKOUT_EVENTS:
        return checkout_change(state, event)
    return None


def _allowed(state: BillingState, now: int) -> bool:
    return rules.decide(state, now).allowed


def _marker(event: StripeEvent, team_id: str) -> dict[str, Any]:
    item = {
        "pk": f"STRIPE_EVENT#{event.id}",
        "sk": "META",
        "type": "stripe_event",
        "event_type": event.type,
        "team_id": team_id,
        "ttl": clock.now() + _EVENT_TTL_SECONDS,
    }
    return {"Put": {"Item": serialize(item), "ConditionExpression": "attribute_not_exists(pk)"}}


def _customer_mapping(customer: str, team_id: str) -> dict[str, Any]:
    # Conditional: a customer already mapped (even by a concurrent event) is never re-mapped.
    item = {"pk": f"CUSTOMER#{customer}", "sk": "META", "type": "customer", "team_id": team_id}
    return {"Put": {"Item": serialize(item), "ConditionExpression": "attribute_not_exists(pk)"}}


def _conflict(event: StripeEvent, team_id: str, reason: str, **detail: Any) -> Outcome:
    """An event that would hand a customer to another team: nothing changes, Stripe stops retrying."""
    logger.warning(
        "stripe event conflicts with the customer's team; nothing changed",
        extra={"event": event.id, "type": event.type, "reason": reason, **detail},
    )
    notifications.emit(
        "Billing Conflict", team_id, stripe_event=event.id, event_type=event.type, reason=reason, **detail
    )
    return "conflict"


def process(event: StripeEvent) -> Outcome:
    """Apply one verified event. Safe to call again with the same event."""
    if event.type not in HANDLED:
        return "ignored"  # a type this gateway does not act on: acknowledged, nothing stored
    claimed = claimed_team(event)
    customer = _id(event.object.get("customer"))
    for _ in range(5):
        owner = _customer_team(customer)
        if owner is not None and claimed is not None and claimed != owner:
            return _conflict(
                event, owner, "customer_belongs_to_another_team", customer=customer, claimed_team=claimed
            )
        team_id = owner or claimed
        if team_id is None:
            logger.warning("stripe event for no known team", extra={"event": event.id, "type": event.type})
            return "ignored"
        try:
            get_team(team_id)
        except NotFound:
            logger.warning("stripe event names an unknown team", extra={"event": event.id, "team": team_id})
            return "ignored"
        state = account.load(team_id)
        if customer and state.customer_id and customer != state.customer_id:
            return _conflict(
                event,
                team_id,
                "team_has_another_customer",
                customer=customer,
                team_customer=state.customer_id,
            )
        change = _change_for(state, event)
        assert change is not None
        if customer and state.customer_id is None:
            change.sets["customer_id"] = customer
        ops: list[dict[str, Any]] = [_marker(event, team_id)]
        if not change.empty():
            # Conditional on the revision read: also keeps the team's customer as it was read.
            ops.append(account.change_op(state, change))
        if customer and owner is None:
            ops.append(_customer_mapping(customer, team_id))
        try:
            gateway_table().transact(ops)
        except ConditionFailed as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                return "duplicate"
            continue  # the billing item or the customer's mapping moved: decide again
        _announce(state, change, event)
        account.forget(team_id)
        return "applied" if len(ops) > 1 else "unchanged"
    raise ServiceUnavailable("Billing state is contended; Stripe will retry", headers={"Retry-After": "5"})


def _announce(before: BillingState, change: account.Change, event: StripeEvent) -> None:
    now = clock.now()
    after = change.preview(before)
    for detail_type, detail in change.notes:
        notifications.emit(detail_type, before.team_id, stripe_event=event.id, **detail)
    with contextlib.suppress(Exception):
        was, now_allowed = _allowed(before, now), _allowed(after, now)
        if was and not now_allowed:
            notifications.emit(
                "Access Suspended", before.team_id, stripe_event=event.id, status=after.sub_status
            )
        elif now_allowed and not was:
            notifications.emit(
                "Access Restored", before.team_id, stripe_event=event.id, status=after.sub_status
            )


def parse(payload: dict[str, Any]) -> StripeEvent:
    try:
        return StripeEvent.model_validate(payload)
    except ValidationError as exc:
        raise ValueError(f"not a Stripe event: {exc.errors()[0]['msg']}") from exc
