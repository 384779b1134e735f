"""Plans: what a Stripe price buys, managed as data (admin API / ``aigw plans``), not code.

A plan is keyed by the Stripe Price ``lookup_key`` (``plan_id``); a price without one can name
its plan in the price's or product's metadata (``aigw_plan``). A plan of kind ``credits`` is a
prepaid credit pack bought once through Checkout: it is never the plan a team is on (assigned,
subscribed to or the default), only the terms of calls its credits pay for.

A subscription plan names at least one limit, or says ``unlimited``: no limit at all is an
explicit choice, never what a forgotten field means. Plans stored before that rule keep
working as they were (read back with ``unlimited`` derived from their limits).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aigw import clock
from aigw.billing.config import billing_settings
from aigw.errors import InvalidRequest, NotFound
from aigw.table import Item, gateway_table
from aigw.warm_cache import WarmCache

PLAN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
_PLAN_ID = re.compile(PLAN_ID_PATTERN)
DEFAULT_MAX_TOKENS = 4096

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
# What bounds a subscription plan's use; a plan without any of them must say ``unlimited``.
LIMITS = ("monthly_tokens", "spend_cap_micro_usd", "requests_per_minute", "tokens_per_minute")


class PlanSpec(BaseModel):
    """What an admin sends; a limit left out does not bound, ``unlimited`` says none is meant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    kind: Literal["subscription", "credits"] = "subscription"
    monthly_tokens: NonNegative | None = None
    spend_cap_micro_usd: NonNegative | None = None
    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = None
    default_max_tokens: Positive = DEFAULT_MAX_TOKENS
    credits_micro_usd: NonNegative = 0
    meter_event_name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    unlimited: bool = False

    def limits(self) -> list[str]:
        return [name for name in LIMITS if getattr(self, name) is not None]


def check_spec(spec: PlanSpec) -> None:
    """Refuse a plan whose terms are not what its admin meant (400 naming the field)."""
    limits = spec.limits()
    if spec.kind == "credits":
        if spec.unlimited:
            raise InvalidRequest(
                "A credit pack is bounded by its credits; 'unlimited' applies to subscription plans only",
                code="invalid_plan",
                param="unlimited",
            )
        return
    if spec.unlimited and limits:
        raise InvalidRequest(
            f"'unlimited' contradicts the limits this plan sets ({', '.join(limits)}); send one or the other",
            code="invalid_plan",
            param="unlimited",
        )
    if not spec.unlimited and not limits:
        raise InvalidRequest(
            "A subscription plan needs a limit: set monthly_tokens, spend_cap_micro_usd, "
            'requests_per_minute or tokens_per_minute, or send "unlimited": true (CLI: --unlimited) '
            "if it really has no limit at all",
            code="plan_limits_missing",
            param="unlimited",
        )


class Plan(PlanSpec):
    plan_id: str
    updated_at: int = 0

    @classmethod
    def from_item(cls, item: Item) -> Plan:
        # DynamoDB numbers arrive as Decimal; pydantic turns whole ones into int.
        fields = {k: item[k] for k in cls.model_fields if k in item}
        if "unlimited" not in item:
            # Stored before plans had to say so: a subscription plan without limits was unlimited.
            fields["unlimited"] = item.get("kind", "subscription") == "subscription" and not any(
                item.get(name) is not None for name in LIMITS
            )
        return cls.model_validate(fields)

    @property
    def is_subscription(self) -> bool:
        return self.kind == "subscription"

    def allows_model(self, model_id: str) -> bool:
        import fnmatch

        if self.allowed_models is None:
            return True
        return any(fnmatch.fnmatchcase(model_id, p) for p in self.allowed_models)


def plan_pk(plan_id: str) -> str:
    return f"PLAN#{plan_id}"


def valid_plan_id(plan_id: str) -> bool:
    return bool(_PLAN_ID.match(plan_id))


def put_plan(plan_id: str, spec: PlanSpec) -> Plan:
    check_spec(spec)
    plan = Plan(plan_id=plan_id, updated_at=clock.now(), **spec.model_dump())
    if plan.name is None:
        plan = plan.model_copy(update={"name": plan_id})
    item: dict[str, Any] = {
        "pk": plan_pk(plan_id),
        "sk": "META",
        "type": "plan",
        "gsi1pk": "PLANS",
        "gsi1sk": plan_id,
        **plan.model_dump(exclude_none=True),
    }
    gateway_table().put(item)
    _cache.forget(plan_id)
    return plan


def get_plan(plan_id: str) -> Plan:
    item = gateway_table().get(plan_pk(plan_id), "META", consistent=True)
    if item is None:
        raise NotFound(f"plan '{plan_id}' does not exist", code="plan_not_found")
    return Plan.from_item(item)


def subscription_plan(plan_id: str) -> Plan:
    """The plan ``plan_id`` if a team may be put on it: it exists and is not a credit pack."""
    plan = get_plan(plan_id)
    if not plan.is_subscription:
        raise InvalidRequest(
            f"plan '{plan_id}' is a credit pack (kind credits): a team buys it through Checkout "
            "or is granted credits ('aigw billing grant'); it cannot be the team's plan",
            code="plan_is_credit_pack",
            param="plan_id",
        )
    return plan


def delete_plan(plan_id: str) -> Plan:
    plan = get_plan(plan_id)
    gateway_table().delete(plan_pk(plan_id), "META")
    _cache.forget(plan_id)
    return plan


def list_plans() -> list[Plan]:
    items = gateway_table().query("gsi1pk = :p", {":p": "PLANS"}, index="gsi1")
    return [Plan.from_item(i) for i in items]


def _plan_or_none(plan_id: str) -> Plan | None:
    try:
        return get_plan(plan_id)
    except NotFound:
        return None


_cache: WarmCache[str, Plan | None] = WarmCache(_plan_or_none, lambda: billing_settings().plan_cache_seconds)


def cached_plan(plan_id: str) -> Plan | None:
    """The plan for the hot path: a warm container trusts a lookup for ``PLAN_CACHE_SECONDS``."""
    return _cache.get(plan_id)


def clear_cache() -> None:
    _cache.clear()
