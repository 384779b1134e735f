"""Dead containers' budget leases, taken back (decision 19).

On Lambda an idle container is frozen, then killed without notice: its lease (see
:mod:`aigw.billing.leases`) always ends by expiry. From ``reclaim_after`` (its expiry plus
``LEASE_GRACE_SECONDS``, longer than any call admitted before the expiry can run) a lease may be
*reclaimed*: the usage records of its calls after ``flushed_seq`` are read back (one ``Query`` per
UTC day of its life, in the one shard its records live in) and charged, the rest of its slice is
returned, and the item is marked ``reclaimed`` with the highest sequence number it counted and
the ``gaps`` below it (so a container that was only slow charges the others itself). The sweeper
(``ReservationSweeperFunction``, every minute) and any admission about to refuse a call for lack
of budget do it; each reclaim is conditional on the lease's state and ``flushed_seq``, so it
happens once and never races a flush or a return of the same lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from aigw import clock, teams
from aigw.billing import account, key_budgets
from aigw.billing.budget import ZERO, Amounts
from aigw.billing.key_budgets import Period
from aigw.billing.leases import ACTIVE, LEASE_SHARDS, RECLAIMED, consumption_of, lease_pk
from aigw.table import ConditionFailed, Item, gateway_table, serialize
from aigw.usage import records as usage_records

logger = Logger(service="aigw-leases")


@dataclass(frozen=True)
class LeaseItem:
    """A lease as stored."""

    lease_id: str
    team_id: str
    state: str
    out: Amounts
    flushed_seq: int
    granted_at: int
    expires_at: int
    reclaim_after: int
    key_id: str | None
    key_period: Period | None

    @classmethod
    def from_item(cls, item: Item) -> LeaseItem:
        period = None
        if item.get("key_period"):
            end = int(item["key_period_end"])
            period = Period(str(item["key_period"]), 0, end)
        return cls(
            lease_id=str(item["sk"]),
            team_id=str(item["team_id"]),
            state=str(item.get("state", ACTIVE)),
            out=Amounts(
                int(item.get("out_tokens", 0)),
                int(item.get("out_spend", 0)),
                int(item.get("out_credits", 0)),
                int(item.get("out_key", 0)),
            ),
            flushed_seq=int(item.get("flushed_seq", 0)),
            granted_at=int(item.get("granted_at", 0)),
            expires_at=int(item.get("expires_at", 0)),
            reclaim_after=int(item.get("reclaim_after", 0)),
            key_id=str(item["key_id"]) if item.get("key_id") else None,
            key_period=period,
        )


def leases_of(team_id: str) -> list[LeaseItem]:
    items = []
    for shard in range(LEASE_SHARDS):
        items += gateway_table().query("pk = :p", {":p": f"LEASE#{team_id}#{shard}"}, consistent=True)
    return [LeaseItem.from_item(i) for i in items]


def active_leases(team_id: str) -> list[LeaseItem]:
    return [lease for lease in leases_of(team_id) if lease.state == ACTIVE]


def reclaim(lease: LeaseItem, now: int | None = None) -> bool:
    """Take a dead container's lease back: charge its calls' recorded usage beyond what it
    flushed, return the rest of its slice. False if it is not dead yet, or was handed back or
    reclaimed meanwhile (each is conditional on the same state and ``flushed_seq``)."""
    at = clock.now() if now is None else now
    if lease.state != ACTIVE or at < lease.reclaim_after:
        return False
    days = usage_records.days_between(lease.granted_at, at)
    found = usage_records.records_of_lease(lease.team_id, lease.lease_id, days, after_seq=lease.flushed_seq)
    consumed, credit_tokens = ZERO, 0
    seqs = set()
    for record in found:
        used, tokens = consumption_of(record, key_budget=lease.key_id is not None)
        consumed, credit_tokens = consumed + used, credit_tokens + tokens
        seqs.add(int(record.lease_seq or 0))
    through = max(seqs, default=lease.flushed_seq)
    gaps = sorted(set(range(lease.flushed_seq + 1, through)) - seqs)
    for _ in range(3):
        outstanding = ZERO - lease.out
        operations: list[dict[str, Any]] = [
            account.lease_change(
                lease.team_id,
                consumed=Amounts(consumed.tokens, consumed.spend, consumed.credits, 0),
                credit_tokens=credit_tokens,
                outstanding=Amounts(outstanding.tokens, outstanding.spend, outstanding.credits, 0),
            ),
            {
                "Update": {
                    "Key": serialize({"pk": lease_pk(lease.team_id, lease.lease_id), "sk": lease.lease_id}),
                    "UpdateExpression": (
                        "SET #state = :reclaimed, reclaimed_seq = :through, gaps = :gaps, "
                        "reclaimed_at = :now, out_tokens = :zero, out_spend = :zero, "
                        "out_credits = :zero, out_key = :zero"
                    ),
                    "ConditionExpression": "#state = :active AND flushed_seq = :fs",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": serialize(
                        {
                            ":reclaimed": RECLAIMED,
                            ":active": ACTIVE,
                            ":through": through,
                            ":gaps": gaps,
                            ":now": at,
                            ":zero": 0,
                            ":fs": lease.flushed_seq,
                        }
                    ),
                }
            },
        ]
        if lease.key_id is not None and lease.key_period is not None:
            operations.append(
                key_budgets.change(
                    lease.key_id,
                    lease.team_id,
                    lease.key_period,
                    consumed=consumed.key,
                    outstanding=-lease.out.key,
                    limit=None,
                )
            )
        try:
            gateway_table().transact(operations)
        except ConditionFailed as exc:
            if exc.failed(1) or not exc.failed(0):
                return False  # handed back or reclaimed by someone else meanwhile
            # Credits cannot cover an overrun in full: take what is there, log the rest.
            state = account.state_from(lease.team_id, exc.items[0] if exc.items else None)
            coverable = max(state.credits, 0) + lease.out.credits
            logger.warning(
                "credits could not cover a dead lease's usage in full",
                extra={"lease_id": lease.lease_id, "uncollected_micro_usd": consumed.credits - coverable},
            )
            consumed = Amounts(
                consumed.tokens, consumed.spend, min(consumed.credits, coverable), consumed.key
            )
            continue
        logger.warning(
            "reclaimed the budget lease of a dead container",
            extra={"team_id": lease.team_id, "lease_id": lease.lease_id, "calls": len(seqs), "gaps": gaps},
        )
        account.forget(lease.team_id)
        return True
    return False


def reclaim_expired(team_id: str, now: int | None = None) -> int:
    """Reclaim the team's dead leases (an admission about to refuse does this first)."""
    at = clock.now() if now is None else now
    return sum(
        reclaim(lease, at)
        for lease in leases_of(team_id)
        if lease.state == ACTIVE and at >= lease.reclaim_after
    )


def sweep(now: int | None = None) -> int:
    """Reclaim every team's dead leases (the scheduled sweeper): one Query per team."""
    return sum(reclaim_expired(team.team_id, now) for team in teams.list_teams(limit=None))
