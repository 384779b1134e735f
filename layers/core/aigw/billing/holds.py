"""Reservation holds: each admitted call's reservation, recorded on the team's billing item
until its call settles, so one whose call died can be found and released.

``open_meter`` adds the call's worst case to the team's counters in one ``UpdateItem``; the same
write sets the attribute ``hold#<request id>`` = ``{funding, tokens, cost, expires_at}``. The
settling transaction removes it on condition that it is still there. A call killed between the
two (a Lambda crash or timeout) leaves its hold behind; once ``expires_at`` has passed (set
well beyond any function's timeout), :func:`release` returns its amounts to the counters and
removes it, under the same condition. Exactly one of settle and release therefore succeeds:
never two releases, and a settle that arrives after a release charges the real usage alone
(see :meth:`aigw.billing.meter.Meter.settle`).

Expired holds are released lazily when the team's item is next written by a reservation, and
by the scheduled sweeper (``ReservationSweeperFunction``) for teams that have gone quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools import Logger

from aigw import clock, teams
from aigw.billing.account import BILLING_SK
from aigw.billing.config import billing_settings
from aigw.table import ConditionFailed, Item, gateway_table
from aigw.teams import team_pk

logger = Logger(service="aigw-reservations")

PREFIX = "hold#"
NAME = "#hold"  # the expression attribute name every hold update uses


def attribute(request_id: str) -> str:
    return PREFIX + request_id


@dataclass(frozen=True)
class Hold:
    request_id: str
    funding: Literal["plan", "credits"]
    tokens: int
    cost: int
    expires_at: int

    def value(self) -> dict[str, Any]:
        return {
            "funding": self.funding,
            "tokens": self.tokens,
            "cost": self.cost,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_attribute(cls, name: str, value: Any) -> Hold:
        return cls(
            request_id=name.removeprefix(PREFIX),
            funding="credits" if value.get("funding") == "credits" else "plan",
            tokens=int(value.get("tokens", 0)),
            cost=int(value.get("cost", 0)),
            expires_at=int(value.get("expires_at", 0)),
        )


def new_hold(request_id: str, funding: Literal["plan", "credits"], tokens: int, cost: int) -> Hold:
    expires_at = clock.now() + billing_settings().reservation_ttl_seconds
    return Hold(request_id, funding, tokens, cost, expires_at)


def holds(item: Item | None) -> list[Hold]:
    return [Hold.from_attribute(k, v) for k, v in (item or {}).items() if k.startswith(PREFIX)]


def expired(item: Item | None, now: int) -> list[Hold]:
    return [h for h in holds(item) if h.expires_at <= now]


def release(team_id: str, hold: Hold) -> bool:
    """Give a dead call's reservation back. False if its call settled (or it was released) first."""
    if hold.funding == "credits":
        expression = f"REMOVE {NAME} ADD credits :c, credits_reserved :neg_c"
        values = {":c": hold.cost, ":neg_c": -hold.cost}
    else:
        expression = f"REMOVE {NAME} ADD tok_held :neg_t, spend_held :neg_c"
        values = {":neg_t": -hold.tokens, ":neg_c": -hold.cost}
    try:
        gateway_table().update(
            team_pk(team_id),
            BILLING_SK,
            expression=expression,
            values=values,
            names={NAME: attribute(hold.request_id)},
            condition=f"attribute_exists({NAME})",
        )
    except ConditionFailed:
        return False
    logger.warning(
        "released the reservation of a call that never settled",
        extra={"team_id": team_id, "request_id": hold.request_id, "tokens": hold.tokens, "cost": hold.cost},
    )
    return True


def release_expired(team_id: str, item: Item | None, now: int | None = None) -> int:
    at = clock.now() if now is None else now
    return sum(release(team_id, hold) for hold in expired(item, at))


def sweep(now: int | None = None) -> int:
    """Release every expired hold of every team: one read per team, a write per dead call."""
    released = 0
    for team in teams.list_teams(limit=None):
        item = gateway_table().get(team_pk(team.team_id), BILLING_SK, consistent=True)
        released += release_expired(team.team_id, item, now)
    return released
