"""Usage of one prompt API, for its owner: calls, tokens, cost and errors, per calling team.

Calls are billed to the caller's team; their usage records also carry the API's slug and sit
in a per-API partition of gsi1 (see :func:`aigw.usage.records.usage_item`), read here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from aigw import clock
from aigw.errors import InvalidRequest
from aigw.keys import ApiKey
from aigw.prompt_apis import access
from aigw.table import gateway_table

if TYPE_CHECKING:
    # The metering module (and the billing modules it imports) is needed by report() alone:
    # the prompt API routes that never read usage do not load it at cold start.
    from aigw.usage.records import UsageRecord

MAX_DAYS = 400


class Totals(BaseModel):
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_micro_usd: int = 0

    def add(self, record: UsageRecord) -> None:
        self.calls += 1
        self.errors += 1 if record.status >= 400 else 0
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.total_tokens += record.prompt_tokens + record.completion_tokens
        self.cost_micro_usd += record.cost_micro_usd


class Report(BaseModel):
    slug: str
    since: str
    until: str
    totals: Totals
    by_team: dict[str, Totals]
    by_route: dict[str, Totals]
    errors_by_code: dict[str, int]


def summarise(slug: str, records: Iterable[UsageRecord], since_ms: int, until_ms: int) -> Report:
    totals = Totals()
    by_team: dict[str, Totals] = defaultdict(Totals)
    by_route: dict[str, Totals] = defaultdict(Totals)
    errors: dict[str, int] = defaultdict(int)
    for record in records:
        totals.add(record)
        by_team[record.team_id].add(record)
        by_route[record.route].add(record)
        if record.error_code:
            errors[record.error_code] += 1
    return Report(
        slug=slug,
        since=clock.iso(since_ms / 1000),
        until=clock.iso(until_ms / 1000),
        totals=totals,
        by_team=dict(by_team),
        by_route=dict(by_route),
        errors_by_code=dict(errors),
    )


def report(key: ApiKey, slug: str, *, days: int = 30) -> Report:
    from aigw.usage.records import UsageRecord, api_usage_pk

    access.require_manager(key, slug)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}", param="days")
    until_ms = clock.now_ms()
    since_ms = until_ms - days * 86_400_000
    items = gateway_table().query(
        "gsi1pk = :p AND gsi1sk BETWEEN :a AND :b",
        {":p": api_usage_pk(slug), ":a": f"{since_ms:014d}", ":b": f"{until_ms:014d}~"},
        index="gsi1",
    )
    return summarise(slug, (UsageRecord.from_item(i) for i in items), since_ms, until_ms)
