"""The hot path's DynamoDB round trips, counted (not timed): a warm call makes two."""

from __future__ import annotations

from typing import Any

from aigw.billing import account, plans
from aigw.table import gateway_table
from tests.helpers.apigw import call
from tests.unit.billing_fixtures import CHAT, HELLO, acme_key, billing_env

__all__ = ["acme_key", "billing_env"]


def _count_calls() -> list[str]:
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    gateway_table().client.meta.events.register("before-call.dynamodb", record)
    return seen


def test_a_warm_call_is_one_reservation_and_one_settlement(acme_key: str) -> None:
    plans.put_plan("limited", plans.PlanSpec(monthly_tokens=100_000, requests_per_minute=100))
    account.assign_plan("acme", "limited")
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200  # warms key, plan, entitlement
    seen = _count_calls()
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    assert seen == ["UpdateItem", "TransactWriteItems"]


def test_a_changed_entitlement_costs_no_extra_read(acme_key: str) -> None:
    account.grant_credits("acme", 1_000_000)
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    # Another container (a webhook, an admin) changes the entitlement behind this one's cache.
    gateway_table().update(
        "TEAM#acme",
        account.BILLING_SK,
        expression="ADD credits :c SET rev = rev + :one",
        values={":c": 1_000_000, ":one": 1},
    )
    seen = _count_calls()
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    # The refused write returned the item (ALL_OLD); the retry decides on it without a GetItem.
    assert seen == ["UpdateItem", "UpdateItem", "TransactWriteItems"]
