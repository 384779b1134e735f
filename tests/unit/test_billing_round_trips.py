"""The hot path's DynamoDB round trips, counted (not timed): a warm container with a live budget
lease makes none before the vendor and one after it (the usage record)."""

from __future__ import annotations

from typing import Any

from aigw.billing import account, plans
from aigw.table import gateway_table
from tests.conftest import FakeClock
from tests.helpers.apigw import call
from tests.unit.billing_fixtures import CHAT, HELLO, acme_key, billing_env

__all__ = ["acme_key", "billing_env"]


def _count_calls() -> list[str]:
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    gateway_table().client.meta.events.register("before-call.dynamodb", record)
    return seen


def test_a_warm_call_writes_its_usage_record_and_nothing_else(acme_key: str) -> None:
    plans.put_plan("limited", plans.PlanSpec(monthly_tokens=100_000, requests_per_minute=100))
    account.assign_plan("acme", "limited")
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200  # warms key, plan, lease
    seen = _count_calls()
    for _ in range(3):
        assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    assert seen == ["PutItem"] * 3


def test_a_cold_container_takes_its_lease_in_one_transaction(acme_key: str) -> None:
    account.grant_credits("acme", 1_000_000)
    account.forget()
    seen = _count_calls()
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    # Reads (the entitlement, a cold catalog), then ONE write before the vendor: the lease's
    # grant; then the record.
    writes = [name for name in seen if name not in ("GetItem", "Query")]
    assert writes == ["TransactWriteItems", "PutItem"]


def test_a_changed_entitlement_costs_no_extra_read(acme_key: str) -> None:
    account.grant_credits("acme", 1_000_000)
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    # Another container (a webhook, an admin) changes the entitlement behind this one's lease.
    account.grant_credits("acme", 1_000_000)
    seen = _count_calls()
    call("POST", CHAT, body={**HELLO, "max_tokens": 10_000}, key=acme_key)  # needs more than the slice
    # The refused top-up returned the item: a new lease is decided on it without a GetItem.
    assert seen.count("GetItem") == 0
    assert seen[:2] == ["TransactWriteItems", "TransactWriteItems"]


def test_a_busy_lease_takes_the_next_minutes_rate_allowance_ahead(
    acme_key: str, fake_clock: FakeClock
) -> None:
    plans.put_plan("limited", plans.PlanSpec(monthly_tokens=100_000, requests_per_minute=100))
    account.assign_plan("acme", "limited")
    fake_clock.set((fake_clock.at // 60) * 60 + 50)  # late in a minute, a call every 3 s
    for _ in range(4):
        assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
        fake_clock.advance(3)
    assert int(fake_clock.at) % 60 == 2  # the next minute has begun
    seen = _count_calls()
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.status == 200
    assert seen[0] == "PutItem"  # nothing before the vendor: the new minute's allowance was taken ahead
    assert reply.header("x-ratelimit-remaining-requests") == "99"  # this minute's first call
