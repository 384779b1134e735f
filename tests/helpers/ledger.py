"""The billing ledger's invariant, checked after billing tests: once this process's budget
leases are handed back, the team's counters equal its usage records and no lease is left."""

from __future__ import annotations

from aigw import clock
from aigw.billing import account, held_leases, key_budgets, reclaim
from aigw.keys import ApiKey
from aigw.usage import records as usage_records
from aigw.usage.records import UsageRecord


def settle() -> None:
    """Hand back every lease this process holds (as the runner does when a worker goes idle)."""
    held_leases.return_all()


def records(team: str = "acme", *, day: str | None = None) -> list[UsageRecord]:
    """The team's records of ``day`` (default: today, UTC)."""
    return usage_records.records_for_day(team, day or clock.iso(clock.now())[:10])


def recent(team: str = "acme", days: int = 3) -> list[UsageRecord]:
    """The team's records of the last ``days`` UTC days, oldest first (tests move the clock)."""
    now = clock.now()
    found: list[UsageRecord] = []
    for back in range(days - 1, -1, -1):
        found += usage_records.records_for_day(team, clock.iso(now - back * 86_400)[:10])
    return found


def assert_agrees(team: str = "acme", *, keys: tuple[ApiKey, ...] = ()) -> None:
    """Counters equal records (this period's), nothing is held, no lease is active."""
    settle()
    view = account.summary(team)
    start_ms = int(clock.now() * 1000) if view.period_start is None else _ms(view.period_start)
    today = recent(team)
    mine = [r for r in today if r.created_at_ms >= start_ms or view.period_start is None]
    plan = [r for r in mine if r.funding == "plan"]
    credits = [r for r in today if r.funding == "credits"]
    assert reclaim.active_leases(team) == [], "a budget lease is still active"
    assert (view.tokens_reserved, view.spend_reserved_micro_usd, view.credits_reserved_micro_usd) == (0, 0, 0)
    assert view.tokens_used == sum(r.total_tokens for r in plan)
    assert view.spend_used_micro_usd == sum(r.cost_micro_usd for r in plan)
    assert view.credits_spent_micro_usd == sum(r.cost_micro_usd - r.uncollected_micro_usd for r in credits)
    assert view.credits_micro_usd >= 0
    for key in keys:
        assert key.budget is not None
        spent = key_budgets.spend(key.key_id, key.budget, clock.now())
        start = spent.period.start * 1000
        of_key = [r for r in today if r.key_id == key.key_id and r.created_at_ms >= start]
        assert spent.held == spent.used == sum(r.cost_micro_usd for r in of_key)


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
