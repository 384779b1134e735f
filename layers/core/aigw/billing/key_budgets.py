"""Per-key budgets: a key's own spend cap per UTC day or month, on top of its team's terms.

The cap is part of the key's configuration (:class:`aigw.keys.KeyBudget`, set by an admin or the
team); what the key spent lives in one small item per key and period, owned here:

=================  ========================  ==========================================
item               pk                        sk
=================  ========================  ==========================================
key spend          ``KEYSPEND#<key_id>``     ``D#<YYYY-MM-DD>`` or ``M#<YYYY-MM>``
=================  ========================  ==========================================

``held`` is what the key's calls used this period plus what its budget leases still hold,
``used`` what they used. A lease for a key with a budget takes its slice of the key's budget
in the same transaction as its slice of the team's (:mod:`aigw.billing.leases`): the same
admission enforces both, and a new period is simply a new item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigw.billing.rules import month_bounds
from aigw.keys import KeyBudget
from aigw.table import gateway_table, serialize

_DAY = 86_400
_KEEP_SECONDS = 40 * _DAY  # a period's spend stays readable this long after it ends


@dataclass(frozen=True)
class Period:
    sk: str
    start: int
    end: int


def period_of(budget: KeyBudget, now: int) -> Period:
    at = datetime.fromtimestamp(now, tz=UTC)
    if budget.period == "day":
        start = now - now % _DAY
        return Period(f"D#{at:%Y-%m-%d}", start, start + _DAY)
    start, end = month_bounds(now)
    return Period(f"M#{at:%Y-%m}", start, end)


def spend_pk(key_id: str) -> str:
    return f"KEYSPEND#{key_id}"


def change(
    key_id: str,
    team_id: str,
    period: Period,
    *,
    consumed: int,
    outstanding: int,
    limit: int | None,
) -> dict[str, Any]:
    """The transaction operation moving a lease's share of a key's budget (see
    :func:`aigw.billing.account.lease_change` for ``consumed`` and ``outstanding``). Where the
    key's holding grows, its limit is the condition."""
    held = consumed + outstanding
    values: dict[str, Any] = {
        ":h": held,
        ":u": consumed,
        ":team": team_id,
        ":key": key_id,
        ":ttl": period.end + _KEEP_SECONDS,
    }
    operation: dict[str, Any] = {
        "Key": serialize({"pk": spend_pk(key_id), "sk": period.sk}),
        "UpdateExpression": "ADD held :h, used :u SET team_id = :team, key_id = :key, #ttl = :ttl",
        "ExpressionAttributeNames": {"#ttl": "ttl"},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if limit is not None and held > 0:
        operation["ConditionExpression"] = "attribute_not_exists(held) OR held <= :max"
        values[":max"] = limit - held
    operation["ExpressionAttributeValues"] = serialize(values)
    return {"Update": operation}


@dataclass(frozen=True)
class KeySpend:
    """What a key spent in its current period: ``used`` by calls, ``held`` used plus leased."""

    period: Period
    used: int
    held: int


def spend(key_id: str, budget: KeyBudget, now: int) -> KeySpend:
    period = period_of(budget, now)
    item = gateway_table().get(spend_pk(key_id), period.sk, consistent=True) or {}
    return KeySpend(period, int(item.get("used", 0)), int(item.get("held", 0)))


def held_of(item: dict[str, Any] | None) -> int:
    return int((item or {}).get("held", 0))


def view(budget: KeyBudget | None, key_id: str, now: int | None = None) -> dict[str, Any] | None:
    """A key's budget as the API shows it: the cap, this period's spend, what is left."""
    if budget is None:
        return None
    from aigw import clock

    at = clock.now() if now is None else now
    spent = spend(key_id, budget, at)
    return {
        "limit_micro_usd": budget.limit_micro_usd,
        "period": budget.period,
        "period_start": clock.iso(spent.period.start),
        "resets_at": clock.iso(spent.period.end),
        "used_micro_usd": spent.used,
        # Held by calls in flight and containers' leases, beyond what calls used.
        "reserved_micro_usd": max(spent.held - spent.used, 0),
        "remaining_micro_usd": max(budget.limit_micro_usd - spent.held, 0),
    }
