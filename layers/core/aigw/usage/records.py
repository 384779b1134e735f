"""Usage records: one item per metered call attempt, their schema, key layout and writes.

A record is the truth of what a call used and cost; the billing counters and the report
aggregates (:mod:`aigw.usage.aggregation`, from the table stream) follow from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aigw.billing.rules import Funding
from aigw.config import settings
from aigw.table import ConditionFailed, Item, gateway_table

_DAY_SECONDS = 86_400

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
    # The PaymentIntent of the machine payment that unlocked this call, if one did.
    machine_payment: str | None = None
    # Answered from the response cache (aigw.response_cache): the tokens above are what was
    # billed for the hit; the vendor call it replayed would have cost this much more.
    cache_hit: bool = False
    cost_saved_micro_usd: int = 0

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
        # Prompt API calls are billed to the caller's team; the API's owner sees them through
        # the report cells (aigw.usage.cells, gsi1 there), not through an index on records.
        item["api_slug"] = slug
    return item


def record(usage: UsageRecord) -> None:
    # Keyed by request id, so a retried write of the same call cannot count twice; the report
    # cells follow from the table stream (aigw.usage.aggregation), once per record.
    try:
        gateway_table().put(usage_item(usage), condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return  # already recorded by an earlier attempt of this very write


def records_for_day(team_id: str, day: str) -> list[UsageRecord]:
    items = gateway_table().query("pk = :p", {":p": usage_pk(team_id, day)}, consistent=True)
    return [UsageRecord.from_item(i) for i in items]
