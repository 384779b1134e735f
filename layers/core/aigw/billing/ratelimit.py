"""Requests and tokens per minute, counted in fixed one-minute windows, one small item per team
and minute (off the team's billing item):

=================  ============================  ======
item               pk                            sk
=================  ============================  ======
rate window        ``RL#<team>#<minute epoch>``  ``W``
=================  ============================  ======

A budget lease takes an *allowance* of the current window (some requests and tokens) in the
same transaction that grants or renews its budget slice, and admits calls from it in memory;
near the limit allowances shrink to one call. Tokens count what a call may use (prompt
estimate plus its output limit), as OpenAI's own limiter does. Overruns are 429 with
``Retry-After``: rate limits are not money.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.billing.budget import SHARE
from aigw.billing.plans import Plan
from aigw.errors import RateLimited
from aigw.table import Item, serialize

WINDOW_SK = "W"
_KEEP_SECONDS = 3600
# At most this many calls' allowance per take while the window is roomy (a share of what is
# left once it is not): the window item is written about once per this many calls of a lease.
TARGET_CALLS = 64


def applies(plan: Plan | None) -> bool:
    return plan is not None and (plan.requests_per_minute is not None or plan.tokens_per_minute is not None)


def minute_of(now: int) -> int:
    return now - now % 60


def retry_after(now: int) -> int:
    return 60 - now % 60


def window_pk(team_id: str, minute: int) -> str:
    return f"RL#{team_id}#{minute}"


@dataclass(frozen=True)
class Window:
    """A window as last seen: its minute and what all of the team's leases took from it."""

    minute: int
    requests: int = 0
    tokens: int = 0

    @classmethod
    def from_item(cls, minute: int, item: Item | None) -> Window:
        item = item or {}
        return cls(minute, int(item.get("req", 0)), int(item.get("tok", 0)))


@dataclass(frozen=True)
class Allowance:
    """What a lease may still admit in ``minute``: requests and (worst-case) tokens."""

    minute: int
    requests: int
    tokens: int


def check_request_size(plan: Plan, tokens: int, now: int) -> None:
    if plan.tokens_per_minute is not None and tokens > plan.tokens_per_minute:
        raise RateLimited(
            f"This request may use up to {tokens} tokens, more than the plan's {plan.tokens_per_minute} "
            "tokens per minute; lower max_tokens.",
            code="tokens_per_minute_exceeded",
            headers={"Retry-After": str(retry_after(now))},
        )


def size(plan: Plan, seen: Window, tokens: int) -> tuple[int, int]:
    """Requests and tokens to take for a lease that needs one call of ``tokens``: a share of
    what the window has left, at least that call, at most ``TARGET_CALLS`` calls."""
    requests = 1
    if plan.requests_per_minute is not None:
        left = plan.requests_per_minute - seen.requests
        requests = max(1, min(TARGET_CALLS, left // SHARE))
    taken = tokens
    if plan.tokens_per_minute is not None:
        left = plan.tokens_per_minute - seen.tokens
        taken = max(tokens, min(tokens * TARGET_CALLS, left // SHARE))
    return requests, taken


def take(team_id: str, minute: int, plan: Plan, requests: int, tokens: int) -> dict[str, Any]:
    """The transaction operation taking an allowance from the window, within the plan's limits."""
    conditions: list[str] = []
    values: dict[str, Any] = {":r": requests, ":t": tokens, ":ttl": minute + _KEEP_SECONDS}
    if plan.requests_per_minute is not None:
        conditions.append("(attribute_not_exists(req) OR req <= :rmax)")
        values[":rmax"] = plan.requests_per_minute - requests
    if plan.tokens_per_minute is not None:
        conditions.append("(attribute_not_exists(tok) OR tok <= :tmax)")
        values[":tmax"] = plan.tokens_per_minute - tokens
    operation: dict[str, Any] = {
        "Key": serialize({"pk": window_pk(team_id, minute), "sk": WINDOW_SK}),
        "UpdateExpression": "ADD req :r, tok :t SET #ttl = :ttl",
        "ExpressionAttributeNames": {"#ttl": "ttl"},
        "ExpressionAttributeValues": serialize(values),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if conditions:
        operation["ConditionExpression"] = " AND ".join(conditions)
    return {"Update": operation}


def give_back(team_id: str, allowance: Allowance) -> dict[str, Any]:
    """The operation returning what a lease did not use of its allowance (same minute only)."""
    return {
        "Update": {
            "Key": serialize({"pk": window_pk(team_id, allowance.minute), "sk": WINDOW_SK}),
            "UpdateExpression": "ADD req :r, tok :t SET #ttl = :ttl",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "ExpressionAttributeValues": serialize(
                {":r": -allowance.requests, ":t": -allowance.tokens, ":ttl": allowance.minute + _KEEP_SECONDS}
            ),
        }
    }


def exceeded(plan: Plan, seen: Window, requests: int, tokens: int, now: int) -> RateLimited | None:
    """The 429 when the window cannot give even one call, or None (it can: ask for less)."""
    headers = {"Retry-After": str(retry_after(now))}
    if plan.requests_per_minute is not None and seen.requests + 1 > plan.requests_per_minute:
        return RateLimited(
            f"Rate limit of {plan.requests_per_minute} requests per minute reached for this team.",
            code="requests_per_minute_exceeded",
            headers=headers,
        )
    if plan.tokens_per_minute is not None and seen.tokens + tokens > plan.tokens_per_minute:
        return RateLimited(
            f"Rate limit of {plan.tokens_per_minute} tokens per minute reached for this team.",
            code="tokens_per_minute_exceeded",
            headers=headers,
        )
    return None


def headers(plan: Plan, requests_left: int, tokens_left: int, now: int) -> dict[str, str]:
    out: dict[str, str] = {}
    if plan.requests_per_minute is not None:
        out["x-ratelimit-limit-requests"] = str(plan.requests_per_minute)
        out["x-ratelimit-remaining-requests"] = str(max(requests_left, 0))
    if plan.tokens_per_minute is not None:
        out["x-ratelimit-limit-tokens"] = str(plan.tokens_per_minute)
        out["x-ratelimit-remaining-tokens"] = str(max(tokens_left, 0))
    if out:
        out["x-ratelimit-reset-requests"] = f"{retry_after(now)}s"
    return out
