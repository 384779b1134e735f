"""Entitlement rules: may this team call a model now, on what terms, and if not, why.

Pure functions of the team's billing state (:class:`BillingState`, read and written only by
:mod:`aigw.billing.account`) and the clock; no table access.

Who may call (first rule that applies):

1. A Stripe subscription decides while it exists: ``trialing``/``active`` allow; ``past_due``
   allows until ``GRACE_PERIOD_SECONDS`` after the first failed payment; ``unpaid``,
   ``canceled``, ``incomplete_expired`` and ``paused`` refuse; ``incomplete`` (a new
   subscription's first payment under way) refuses only a team without a plan of its own.
2. Without a subscription, a plan assigned by an admin, else ``DEFAULT_PLAN`` (if set).
   Whichever of 1 and 2 names the plan, a credit pack (``kind: credits``) never allows by itself.
3. Where 1 and 2 refuse, prepaid credits fund calls while the balance lasts.
4. Otherwise 402 ``no_subscription``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from aigw import clock
from aigw.billing.config import billing_settings
from aigw.billing.plans import Plan, cached_plan
from aigw.table import Item

ALLOWING = frozenset({"trialing", "active"})
PAYMENT_REFUSALS = frozenset({"unpaid", "incomplete"})
INACTIVE = frozenset({"canceled", "incomplete_expired"})
# A new subscription whose first payment is under way (Checkout, 3-D Secure: up to 23 hours). It
# refuses only a team that had nothing else: one on an assigned or default plan keeps that plan
# until the subscription is paid (and is not told it lost access in between).
SETTING_UP = "incomplete"

# Terms for credit-funded calls when the credit pack bought names no plan: no limits but money.
PREPAID = Plan(plan_id="prepaid-credits", name="Prepaid credits", kind="credits")

RefusalCode = Literal[
    "payment_failed",
    "subscription_inactive",
    "subscription_paused",
    "no_subscription",
    "quota_exhausted",
    "credits_exhausted",
    "spend_cap_reached",
]
Funding = Literal["plan", "credits"]


def _int(item: Item, name: str) -> int | None:
    value = item.get(name)
    return int(value) if value is not None else None


class BillingState(BaseModel):
    """The team's billing item as the hot path and the webhook see it."""

    model_config = ConfigDict(frozen=True)

    team_id: str
    rev: int = 0
    customer_id: str | None = None
    sub_id: str | None = None
    sub_status: str | None = None
    sub_plan_id: str | None = None
    sub_event_at: int = 0
    paid_sub_id: str | None = None
    sub_paid_at: int | None = None
    trial_end: int | None = None
    manual_plan_id: str | None = None
    period_start: int | None = None
    period_end: int | None = None
    first_failed_at: int | None = None
    failed_invoice_at: int | None = None
    payment_event_at: int = 0
    credits: int = 0
    credits_reserved: int = 0
    credit_plan_id: str | None = None
    credits_bought: bool = False
    tok_held: int = 0  # used this period plus what leases hold
    tok_used: int = 0
    spend_held: int = 0
    spend_used: int = 0
    rl_min: int | None = None
    rl_req: int = 0
    rl_tok: int = 0
    warned_80: int | None = None
    warned_100: int | None = None
    suspended_notified: bool = False
    link_gen: int = 0

    @classmethod
    def from_item(cls, team_id: str, item: Item | None) -> BillingState:
        # DynamoDB numbers arrive as Decimal; pydantic turns whole ones into int.
        fields = {k: v for k, v in (item or {}).items() if k in cls.model_fields and k != "team_id"}
        return cls.model_validate({**fields, "team_id": team_id})

    @property
    def has_subscription(self) -> bool:
        return self.sub_id is not None

    @property
    def subscription_governs_period(self) -> bool:
        return self.has_subscription and self.sub_status not in INACTIVE

    def grace_until(self) -> int | None:
        if self.sub_status != "past_due":
            return None
        started = self.first_failed_at or self.sub_event_at
        return started + billing_settings().grace_seconds

    def credits_balance(self) -> int:
        return self.credits + self.credits_reserved


@dataclass(frozen=True)
class Decision:
    """The answer for one call: allowed on which terms, or refused with a code."""

    allowed: bool
    funding: Funding | None = None
    plan: Plan | None = None
    code: RefusalCode | None = None
    message: str = ""
    warning: str | None = None
    returns_at: int | None = None


def _refusal(state: BillingState, now: int) -> Decision | None:
    """Why the team's subscription or plan refuses, or None if it allows (credits aside)."""
    status = state.sub_status
    if state.has_subscription and status not in INACTIVE:
        if status in ALLOWING:
            return None
        if status == "past_due":
            grace = state.grace_until() or 0
            if now < grace:
                return None
            return Decision(
                False,
                code="payment_failed",
                message="Payment for this team's subscription failed and the grace period has ended; "
                "update the payment method to restore access.",
            )
        if status in PAYMENT_REFUSALS:
            if status == SETTING_UP and _plan_without_stripe(state):
                return None  # its first payment is under way: the team keeps the plan it had
            return Decision(
                False,
                code="payment_failed",
                message=f"This team's subscription is {status}: its payment has not succeeded; "
                "update the payment method to restore access.",
            )
        if status == "paused":
            return Decision(
                False,
                code="subscription_paused",
                message="This team's subscription is paused; resume it to restore access.",
            )
    if state.manual_plan_id or (not state.has_subscription and billing_settings().default_plan):
        return None
    if state.has_subscription:
        return Decision(
            False,
            code="subscription_inactive",
            message=f"This team's subscription is {status}; subscribe again to restore access.",
        )
    return Decision(False, code="no_subscription", message="This team has no subscription or plan.")


def _plan_without_stripe(state: BillingState) -> str | None:
    return state.manual_plan_id or billing_settings().default_plan


def plan_id_for(state: BillingState) -> str | None:
    own = _plan_without_stripe(state)
    setting_up = state.sub_status == SETTING_UP and own is not None
    if state.has_subscription and state.sub_status not in INACTIVE and not setting_up:
        return state.sub_plan_id
    return own


def decide(state: BillingState, now: int) -> Decision:
    refusal = _refusal(state, now)
    if refusal is None:
        plan_id = plan_id_for(state)
        plan = cached_plan(plan_id) if plan_id else None
        if plan is None:
            refusal = Decision(
                False,
                code="no_subscription",
                message=f"This team's plan '{plan_id}' is not configured on this gateway; "
                "an operator must create it ('aigw plans create').",
            )
        elif not plan.is_subscription:
            # A credit pack named as the team's plan (a price mapped to it, an old assignment,
            # DEFAULT_PLAN) grants nothing by itself: only credits bought with it pay for calls.
            refusal = Decision(
                False,
                code="no_subscription",
                message=f"This team's plan '{plan_id}' is a credit pack, not a subscription plan; "
                "buy credits or a subscription, or an operator assigns a subscription plan.",
            )
        else:
            warning = None
            grace = state.grace_until()
            if grace is not None:
                warning = f"payment_failed; access ends at {clock.iso(grace)} unless payment succeeds"
            elif state.sub_status == "trialing" and state.trial_end:
                warning = f"trial_ending; the trial ends at {clock.iso(state.trial_end)}"
            return Decision(True, funding="plan", plan=plan, warning=warning)
    if state.credits_balance() > 0:
        # Credits leased to containers still belong to the team: whether they cover a call is
        # admission's question (aigw.billing.admission), not the entitlement's.
        plan = cached_plan(state.credit_plan_id) if state.credit_plan_id else None
        return Decision(True, funding="credits", plan=plan or PREPAID)
    if state.credits_bought and refusal.code in ("no_subscription", "subscription_inactive"):
        return Decision(
            False,
            code="credits_exhausted",
            message="This team's prepaid credits are used up; buy more credits to continue.",
        )
    return refusal


# ---- period -------------------------------------------------------------------------------


def month_bounds(now: int) -> tuple[int, int]:
    """The calendar month (UTC) containing ``now``: the quota period without a subscription."""
    at = datetime.fromtimestamp(now, tz=UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


def needs_rollover(state: BillingState, now: int) -> bool:
    if state.subscription_governs_period:
        return False  # Stripe moves the period (customer.subscription.updated at renewal)
    return state.period_end is None or now >= state.period_end
