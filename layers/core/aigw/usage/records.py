"""Usage records: one item per metered call attempt, their schema, key layout and writes.

A record is the truth of what a call used and cost; the billing counters (through the budget
lease that admitted the call, :mod:`aigw.billing.leases`) and the report aggregates
(:mod:`aigw.usage.aggregation`, from the table stream) follow from it.

Key layout (see docs/decisions/0019-budget-leases.md):

==================  ==============================================  ============================
item                pk                                              sk
==================  ==============================================  ============================
usage record        ``USAGE#<team>#<YYYY-MM-DD>#<shard>``           ``<lease_id>#<lease_seq>``
==================  ==============================================  ============================

``shard`` (``0`` .. ``USAGE_SHARDS - 1``) is a hash of the lease that admitted the call, so one
team's records spread over ``USAGE_SHARDS`` partition keys per day, and the records of one
lease are one ``Query`` (``sk`` begins with the lease id, in sequence order: ``lease_seq`` is
zero-padded). A day's records are the union of its shards, ordered by ``created_at_ms``.
The key names the call by its lease and sequence number, so a retried write of the same call
cannot count twice.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aigw.billing.rules import Funding
from aigw.config import settings
from aigw.table import ConditionFailed, Item, gateway_table

_DAY_SECONDS = 86_400
USAGE_SHARDS = 8
SEQ_DIGITS = 10

UsageSource = Literal["provider", "estimate", "reservation", "none"]
# What a record may be flagged with (``flags``), each also logged when it happens:
#   usage_clamped       the vendor reported negative or absurd usage; what was billed is clamped
#   overrun             the vendor reported more output than the limit that was sent and reserved
#   output_capped       the caller's budget could not cover the default output limit; it was capped
#   client_disconnected the caller hung up mid-stream; the upstream was read on to its usage
#   billed_reservation  no usage could be had from the vendor: the reservation was billed
#   late_charge         charged after the lease that admitted it was reclaimed as dead
Flag = Literal[
    "usage_clamped", "overrun", "output_capped", "client_disconnected", "billed_reservation", "late_charge"
]


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
    # The budget lease that admitted the call and the call's number within it (the record's key).
    lease_id: str | None = None
    lease_seq: int | None = None
    # The output limit reserved for the call and sent to the vendor.
    output_limit: int | None = None
    flags: tuple[Flag, ...] = ()
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
        if "flags" in fields:
            fields["flags"] = tuple(sorted(fields["flags"]))
        return cls.model_validate(fields)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _day(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def usage_shard(lease_id: str) -> int:
    return zlib.crc32(lease_id.encode()) % USAGE_SHARDS


def usage_pk(team_id: str, day: str, shard: int) -> str:
    return f"USAGE#{team_id}#{day}#{shard}"


def usage_sk(lease_id: str, seq: int) -> str:
    return f"{lease_id}#{seq:0{SEQ_DIGITS}d}"


API_ROUTE_PREFIX = "/apis/"


def api_slug_of(route: str) -> str | None:
    """The prompt API a route belongs to (``/apis/<slug>[/...]``), or None.

    Only for reading records written before ``api_slug`` was carried explicitly."""
    if not route.startswith(API_ROUTE_PREFIX):
        return None
    return route[len(API_ROUTE_PREFIX) :].split("/", 1)[0] or None


def record_key(record: UsageRecord) -> tuple[str, str]:
    """The record's pk and sk. A record that names no lease (written by tools or tests, never
    by a metered call) is sharded by its request id and keyed by time."""
    day = _day(record.created_at_ms)
    if record.lease_id is None or record.lease_seq is None:
        return (
            usage_pk(record.team_id, day, usage_shard(record.request_id)),
            f"-#{record.created_at_ms:014d}#{record.request_id}",
        )
    return usage_pk(record.team_id, day, usage_shard(record.lease_id)), usage_sk(
        record.lease_id, record.lease_seq
    )


def usage_item(record: UsageRecord) -> dict[str, Any]:
    pk, sk = record_key(record)
    expires = record.created_at_ms // 1000 + settings().usage_retention_days * _DAY_SECONDS
    dumped = record.model_dump(exclude_none=True)
    if record.flags:
        dumped["flags"] = set(record.flags)  # a string set: small, and order means nothing
    else:
        dumped.pop("flags", None)
    item = {
        "pk": pk,
        "sk": sk,
        "type": "usage",
        "ttl": expires,
        **dumped,
    }
    # Prompt API calls are billed to the caller's team (api_slug is on the record); the API's
    # owner sees them through the report cells (aigw.usage.cells, gsi1 there), not an index here.
    return item


def record(usage: UsageRecord) -> None:
    """Write a record once: a retried write of the same call (same lease and sequence) is a no-op.
    The report cells follow from the table stream (aigw.usage.aggregation), once per record."""
    try:
        gateway_table().put(usage_item(usage), condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return  # already recorded by an earlier attempt of this very write


def items_for_day(team_id: str, day: str) -> list[Item]:
    """A team's record items of one UTC day, as stored, oldest first (every shard of the day)."""
    found: list[Item] = []
    for shard in range(USAGE_SHARDS):
        found.extend(gateway_table().query("pk = :p", {":p": usage_pk(team_id, day, shard)}, consistent=True))
    return sorted(found, key=lambda i: (int(i.get("created_at_ms", 0)), str(i.get("request_id", ""))))


def records_for_day(team_id: str, day: str) -> list[UsageRecord]:
    """A team's records of one UTC day, oldest first (every shard of the day)."""
    return [UsageRecord.from_item(i) for i in items_for_day(team_id, day)]


def records_of_lease(
    team_id: str, lease_id: str, days: list[str], *, after_seq: int = 0
) -> list[UsageRecord]:
    """The records a lease admitted with a sequence number above ``after_seq``, in sequence order.

    ``days``: the UTC days the lease may have written in (from its grant to its expiry)."""
    shard = usage_shard(lease_id)
    found: list[UsageRecord] = []
    for day in days:
        items = gateway_table().query(
            "pk = :p AND sk BETWEEN :a AND :b",
            {
                ":p": usage_pk(team_id, day, shard),
                ":a": usage_sk(lease_id, after_seq + 1),
                ":b": f"{lease_id}#~",
            },
            consistent=True,
        )
        found.extend(UsageRecord.from_item(i) for i in items)
    return sorted(found, key=lambda r: r.lease_seq or 0)


def days_between(start_s: int, end_s: int) -> list[str]:
    """The UTC days from ``start_s`` to ``end_s`` (epoch seconds), both included."""
    days: list[str] = []
    at = start_s - start_s % _DAY_SECONDS
    while at <= end_s:
        days.append(_day(at * 1000))
        at += _DAY_SECONDS
    return days
