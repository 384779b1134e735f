"""Metering: every model call is opened, then settled or failed, exactly once.

:func:`open_meter` is where a call is admitted before the provider is contacted; ``settle``
records what the call really used and cost, ``fail`` records a failed call at no cost. Every
route that calls a model (``/v1``, prompt APIs) goes through this one path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aigw import clock
from aigw.catalog import ModelInfo
from aigw.chat import ChatRequest, Usage
from aigw.config import settings
from aigw.errors import GatewayError
from aigw.keys import ApiKey
from aigw.pricing import cost_micro_usd
from aigw.reports import aggregate_updates
from aigw.table import ConditionFailed, Item, gateway_table, serialize

_DAY_SECONDS = 86_400


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
    usage_source: Literal["provider", "estimate", "none"] = "provider"
    created_at_ms: int
    api_slug: str | None = None

    @classmethod
    def from_item(cls, item: Item) -> UsageRecord:
        fields = {k: item[k] for k in cls.model_fields if k in item}
        return cls.model_validate(fields)


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
    # aggregates ride in the same transaction, so they move only when the record is written.
    put = {"Put": {"Item": serialize(usage_item(usage)), "ConditionExpression": "attribute_not_exists(pk)"}}
    try:
        gateway_table().transact([put, *aggregate_updates(usage)])
    except ConditionFailed:
        return  # already recorded by an earlier attempt of this very write


def records_for_day(team_id: str, day: str) -> list[UsageRecord]:
    items = gateway_table().query("pk = :p", {":p": usage_pk(team_id, day)}, consistent=True)
    return [UsageRecord.from_item(i) for i in items]


UsageSource = Literal["provider", "estimate", "none"]


@dataclass
class Meter:
    """One call in flight. Not thread-safe; one per request."""

    key: ApiKey
    model: ModelInfo
    request_id: str
    route: str
    started: float = field(default_factory=time.monotonic)
    closed: bool = False

    def _record(self, **fields: Any) -> UsageRecord:
        if self.closed:
            raise RuntimeError(f"meter for {self.request_id} already closed")
        self.closed = True
        usage = UsageRecord(
            request_id=self.request_id,
            team_id=self.key.team_id,
            key_id=self.key.key_id,
            model=self.model.id,
            provider=self.model.provider,
            route=self.route,
            latency_ms=int((time.monotonic() - self.started) * 1000),
            created_at_ms=clock.now_ms(),
            **fields,
        )
        record(usage)
        return usage

    def settle(self, usage: Usage, *, source: UsageSource = "provider", status: int = 200) -> UsageRecord:
        """The call produced output: record its real tokens and cost."""
        return self._record(
            status=status,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_micro_usd=cost_micro_usd(self.model, usage),
            usage_source=source,
        )

    def fail(self, error: GatewayError) -> UsageRecord:
        """The call produced nothing billable: record the failure at no cost."""
        return self._record(status=error.status, error_code=error.code, usage_source="none")


def open_meter(key: ApiKey, model: ModelInfo, request: ChatRequest, *, request_id: str, route: str) -> Meter:
    """Admit a call before any provider is contacted."""
    return Meter(key=key, model=model, request_id=request_id, route=route)
