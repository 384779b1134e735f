"""Requests and tokens per minute, counted in fixed one-minute windows on the team's billing
item, inside the same conditional write that reserves quota (no extra round trip).

Tokens count what a call may use (prompt estimate plus its output limit), as OpenAI's own
limiter does. Overruns are 429 with ``Retry-After``: rate limits are not money.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigw.billing.plans import Plan
from aigw.errors import RateLimited


@dataclass(frozen=True)
class Window:
    """The parts of a reservation's update that count this minute's requests and tokens."""

    minute: int
    fresh: bool  # True: this write opens a new window (resets the counters)

    def clauses(self, plan: Plan, tokens: int) -> tuple[list[str], list[str], list[str], dict[str, int]]:
        """(SET parts, ADD parts, conditions, values)."""
        values = {":rl_min": self.minute, ":rl_one": 1, ":rl_tok": tokens}
        if self.fresh:
            return (
                ["rl_min = :rl_min", "rl_req = :rl_one", "rl_tok = :rl_tok"],
                [],
                ["(attribute_not_exists(rl_min) OR rl_min < :rl_min)"],
                values,
            )
        conditions = ["rl_min = :rl_min"]
        if plan.requests_per_minute is not None:
            conditions.append("rl_req < :rl_rpm")
            values[":rl_rpm"] = plan.requests_per_minute
        if plan.tokens_per_minute is not None:
            conditions.append("rl_tok <= :rl_tmax")
            values[":rl_tmax"] = plan.tokens_per_minute - tokens
        return [], ["rl_req :rl_one", "rl_tok :rl_tok"], conditions, values


def applies(plan: Plan | None) -> bool:
    return plan is not None and (plan.requests_per_minute is not None or plan.tokens_per_minute is not None)


def minute_of(now: int) -> int:
    return now - now % 60


def retry_after(now: int) -> int:
    return 60 - now % 60


def check_request_size(plan: Plan, tokens: int, now: int) -> None:
    if plan.tokens_per_minute is not None and tokens > plan.tokens_per_minute:
        raise RateLimited(
            f"This request may use up to {tokens} tokens, more than the plan's {plan.tokens_per_minute} "
            "tokens per minute; lower max_tokens.",
            code="tokens_per_minute_exceeded",
            headers={"Retry-After": str(retry_after(now))},
        )


def exceeded(
    plan: Plan, rl_min: int | None, rl_req: int, rl_tok: int, tokens: int, now: int
) -> RateLimited | None:
    """The 429 for a window that is full, or None if the window was simply stale."""
    if rl_min != minute_of(now):
        return None
    headers = {"Retry-After": str(retry_after(now))}
    if plan.requests_per_minute is not None and rl_req >= plan.requests_per_minute:
        return RateLimited(
            f"Rate limit of {plan.requests_per_minute} requests per minute reached for this team.",
            code="requests_per_minute_exceeded",
            headers=headers,
        )
    if plan.tokens_per_minute is not None and rl_tok + tokens > plan.tokens_per_minute:
        return RateLimited(
            f"Rate limit of {plan.tokens_per_minute} tokens per minute reached for this team.",
            code="tokens_per_minute_exceeded",
            headers=headers,
        )
    return None


def headers(plan: Plan, rl_req: int, rl_tok: int, now: int) -> dict[str, str]:
    out: dict[str, str] = {}
    if plan.requests_per_minute is not None:
        out["x-ratelimit-limit-requests"] = str(plan.requests_per_minute)
        out["x-ratelimit-remaining-requests"] = str(max(plan.requests_per_minute - rl_req, 0))
    if plan.tokens_per_minute is not None:
        out["x-ratelimit-limit-tokens"] = str(plan.tokens_per_minute)
        out["x-ratelimit-remaining-tokens"] = str(max(plan.tokens_per_minute - rl_tok, 0))
    if out:
        out["x-ratelimit-reset-requests"] = f"{retry_after(now)}s"
    return out
