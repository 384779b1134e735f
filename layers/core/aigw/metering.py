"""Usage records: one per call, successful or not, written to the gateway table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aigw.config import settings
from aigw.table import Item, gateway_table

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

    @classmethod
    def from_item(cls, item: Item) -> UsageRecord:
        fields = {k: item[k] for k in cls.model_fields if k in item}
        return cls.model_validate(fields)


def _day(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def usage_pk(team_id: str, day: str) -> str:
    return f"USAGE#{team_id}#{day}"


def usage_item(record: UsageRecord) -> dict[str, Any]:
    expires = record.created_at_ms // 1000 + settings().usage_retention_days * _DAY_SECONDS
    return {
        "pk": usage_pk(record.team_id, _day(record.created_at_ms)),
        "sk": f"{record.created_at_ms:014d}#{record.request_id}",
        "type": "usage",
        "ttl": expires,
        **record.model_dump(exclude_none=True),
    }


def record(usage: UsageRecord) -> None:
    # Keyed by request id, so a retried write of the same call cannot count twice.
    gateway_table().put(usage_item(usage), condition="attribute_not_exists(pk)")


def records_for_day(team_id: str, day: str) -> list[UsageRecord]:
    items = gateway_table().query("pk = :p", {":p": usage_pk(team_id, day)}, consistent=True)
    return [UsageRecord.from_item(i) for i in items]
