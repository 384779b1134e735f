"""POST /webhooks/stripe: signatures, every handled event type, duplicates, order, grace."""

from __future__ import annotations

import json
import time

import pytest

from aigw import clock
from aigw.billing import account
from tests.conftest import FakeClock
from tests.helpers import ledger
from tests.helpers.apigw import call
from tests.helpers.stripe import deliver, signature, stripe_event
from tests.unit.billing_fixtures import CHAT, HELLO, Notes, acme_key, billing_env, notes

__all__ = ["acme_key", "billing_env", "notes"]


def _chat(key: str) -> tuple[int, dict[str, object], dict[str, str]]:
    reply = call("POST", CHAT, body=HELLO, key=key)
    return reply.status, reply.json(), reply.headers


def _code(key: str) -> object:
    status, body, _ = _chat(key)
    assert status == 402, body
    error = body["error"]
    assert isinstance(error, dict)
    return error["code"]


def test_without_subscription_the_team_gets_402_no_subscription(acme_key: str) -> None:
    assert _code(acme_key) == "no_subscription"


@pytest.mark.parametrize(
    "tamper",
    ["forged", "missing", "stale", "wrong-secret", "body-changed"],
)
def test_bad_signatures_get_400_and_change_nothing(acme_key: str, tamper: str) -> None:
    event = stripe_event("customer.subscription.created")
    payload = json.dumps(event)
    headers = {"Stripe-Signature": signature(payload)}
    if tamper == "forged":
        headers["Stripe-Signature"] = f"t={int(time.time())},v1={'0' * 64}"
    elif tamper == "missing":
        headers = {}
    elif tamper == "stale":
        headers["Stripe-Signature"] = signature(payload, timestamp=int(time.time()) - 3600)
    elif tamper == "wrong-secret":
        headers["Stripe-Signature"] = signature(payload, secret="whsec_attacker")
    else:
        payload = payload.replace('"active"', '"trialing"')
    reply = call("POST", "/webhooks/stripe", raw_body=payload, headers=headers)
    assert reply.status == 400
    assert reply.json()["code"] == "invalid_signature"
    assert reply.header("Content-Type") == "application/problem+json"
    assert _code(acme_key) == "no_subscription"


def test_subscription_created_grants_the_plan(acme_key: str) -> None:
    reply = deliver(stripe_event("customer.subscription.created"))
    assert (reply.status, reply.json()) == (200, {"received": True, "outcome": "applied"})
    status, body, headers = _chat(acme_key)
    assert status == 200, body
    assert headers["X-Billing-Quota-Tokens-Limit"] == "100000"
    assert 0 < int(headers["X-Billing-Quota-Tokens-Remaining"]) < 100_000
    view = account.summary("acme")
    assert (view.plan_id, view.subscription_status, view.customer_id) == (
        "pro-monthly",
        "active",
        "cus_TestAcme",
    )


def test_duplicate_delivery_takes_effect_once(acme_key: str) -> None:
    event = stripe_event("checkout.session.completed.credits")
    assert deliver(event).json()["outcome"] == "applied"
    assert deliver(event).json()["outcome"] == "duplicate"
    assert deliver(event).status == 200
    assert account.summary("acme").credits_micro_usd == 10_000_000


def test_out_of_order_events_never_roll_back(acme_key: str) -> None:
    now = clock.now()
    canceled = stripe_event("customer.subscription.deleted", at=now)  # sample: created T0+120
    older_active = stripe_event("customer.subscription.updated", at=now, status="active")  # T0+60
    assert deliver(canceled).status == 200
    assert deliver(older_active).json()["outcome"] == "unchanged"
    assert _code(acme_key) == "subscription_inactive"


def test_a_late_past_due_does_not_undo_a_newer_active(acme_key: str) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.resumed", at=now))  # active at T0+120
    assert deliver(stripe_event("customer.subscription.updated", at=now)).json()["outcome"] == "unchanged"
    assert _chat(acme_key)[0] == 200


def test_cancellation_of_an_old_subscription_keeps_the_new_one(acme_key: str) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now, id="sub_new"))
    deliver(stripe_event("customer.subscription.deleted", at=now + 10, id="sub_old"))
    assert _chat(acme_key)[0] == 200


def test_deleted_refuses_with_a_checkout_link(acme_key: str) -> None:
    deliver(stripe_event("customer.subscription.created"))
    deliver(stripe_event("customer.subscription.deleted"))
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    body = reply.json()
    assert reply.status == 402
    assert body["code"] == body["error"]["code"] == "subscription_inactive"
    assert "/billing/checkout?token=" in body["fix_url"]
    assert reply.header("Link") == f'<{body["fix_url"]}>; rel="payment"'


def test_paused_refuses_and_resumed_restores(acme_key: str, notes: Notes) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now))
    deliver(stripe_event("customer.subscription.paused", at=now))
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.json()["error"]["code"] == "subscription_paused"
    assert "/billing/portal?token=" in reply.json()["fix_url"]  # the customer resumes in the portal
    deliver(stripe_event("customer.subscription.resumed", at=now))
    assert _chat(acme_key)[0] == 200
    kinds = [kind for kind, _ in notes()]
    assert kinds == ["Access Restored", "Access Suspended", "Access Restored"]


def test_payment_failure_warns_during_grace_then_refuses(
    acme_key: str, notes: Notes, fake_clock: FakeClock
) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now))
    deliver(stripe_event("invoice.payment_failed", at=now))
    deliver(stripe_event("customer.subscription.updated", at=now))  # past_due
    status, _, headers = _chat(acme_key)
    assert status == 200
    assert headers["X-Billing-Warning"].startswith("payment_failed; access ends at ")
    kinds = [kind for kind, _ in notes()]
    assert "Payment Failed" in kinds
    assert "Grace Started" in kinds

    fake_clock.advance(3700)  # an hour after the failure at +60 s
    account.forget()
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.status == 402
    assert reply.json()["error"]["code"] == "payment_failed"
    assert "/billing/portal?token=" in reply.json()["fix_url"]
    assert [kind for kind, _ in notes()] == ["Access Suspended"]
    call("POST", CHAT, body=HELLO, key=acme_key)
    assert notes() == []  # told once

    deliver(stripe_event("invoice.paid", at=now + 3700))
    deliver(stripe_event("customer.subscription.resumed", at=now + 3700))  # active again
    assert _chat(acme_key)[0] == 200


@pytest.mark.parametrize("status", ["unpaid", "incomplete"])
def test_unpaid_and_incomplete_refuse_as_payment_failed(acme_key: str, status: str) -> None:
    deliver(stripe_event("customer.subscription.updated", status=status))
    assert _code(acme_key) == "payment_failed"


def test_incomplete_expired_refuses_as_inactive(acme_key: str) -> None:
    deliver(stripe_event("customer.subscription.updated", status="incomplete_expired"))
    assert _code(acme_key) == "subscription_inactive"


def test_payment_action_required_and_trial_ending_notify(acme_key: str, notes: Notes) -> None:
    deliver(stripe_event("customer.subscription.trial_will_end"))
    status, _, headers = _chat(acme_key)
    assert status == 200  # trialing allows
    assert headers["X-Billing-Warning"].startswith("trial_ending; the trial ends at ")
    deliver(stripe_event("invoice.payment_action_required"))
    received = dict(notes())
    assert received["Trial Ending"]["team_id"] == "acme"
    assert received["Payment Action Required"]["hosted_invoice_url"].startswith("https://invoice.stripe.com/")


def test_checkout_links_the_customer_so_later_events_find_the_team(acme_key: str) -> None:
    deliver(stripe_event("checkout.session.completed.subscription"))
    sub = stripe_event("customer.subscription.created", metadata={})  # no team_id in metadata
    assert deliver(sub).json()["outcome"] == "applied"
    assert _chat(acme_key)[0] == 200


def test_credits_checkout_funds_calls(acme_key: str, notes: Notes) -> None:
    deliver(stripe_event("checkout.session.completed.credits"))
    status, _, headers = _chat(acme_key)
    assert status == 200
    assert 0 < int(headers["X-Billing-Credits-Remaining-Micro-Usd"]) < 10_000_000
    assert ("Credits Purchased", "acme") in [(k, d["team_id"]) for k, d in notes()]


def test_a_new_period_resets_the_quota_counters(acme_key: str) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now))
    _chat(acme_key)
    ledger.settle()  # the container hands its lease back
    assert account.summary("acme").tokens_used > 0
    renewed = stripe_event("customer.subscription.updated", at=now + 30 * 86_400, status="active")
    deliver(renewed)
    assert account.summary("acme").tokens_used == 0


def test_unknown_events_and_unknown_teams_are_acknowledged(acme_key: str) -> None:
    assert deliver(stripe_event("unknown.type")).json() == {"received": True, "outcome": "ignored"}
    stranger = stripe_event("customer.subscription.created", metadata={"team_id": "nobody"}, customer="cus_x")
    assert deliver(stranger).json()["outcome"] == "ignored"


def test_garbage_with_a_valid_signature_is_400(acme_key: str) -> None:
    payload = '{"hello": "world"}'
    reply = call(
        "POST", "/webhooks/stripe", raw_body=payload, headers={"Stripe-Signature": signature(payload)}
    )
    assert reply.status == 400


def test_an_old_payment_failure_after_a_newer_payment_starts_no_grace(acme_key: str) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now))
    deliver(stripe_event("invoice.paid", at=now))  # created at +180
    assert deliver(stripe_event("invoice.payment_failed", at=now)).json()["outcome"] == "unchanged"  # +60
    assert account.load("acme").first_failed_at is None


def test_delayed_payment_checkout_adds_credits_when_it_succeeds(acme_key: str) -> None:
    pending = stripe_event("checkout.session.completed.credits", payment_status="unpaid")
    deliver(pending)
    assert account.summary("acme").credits_micro_usd == 0
    succeeded = stripe_event("checkout.session.completed.credits")
    succeeded["type"] = "checkout.session.async_payment_succeeded"
    deliver(succeeded)
    assert account.summary("acme").credits_micro_usd == 10_000_000


def test_plan_can_be_named_in_product_metadata(acme_key: str) -> None:
    from aigw.billing import plans

    plans.put_plan("team-annual", plans.PlanSpec(monthly_tokens=7))
    event = stripe_event("customer.subscription.created")
    price = event["data"]["object"]["items"]["data"][0]["price"]
    price["lookup_key"] = None
    price["product"] = {"id": "prod_TestTeam", "object": "product", "metadata": {"aigw_plan": "team-annual"}}
    deliver(event)
    assert account.summary("acme").monthly_tokens == 7


def test_webhook_secret_comes_from_ssm_in_aws(acme_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from aigw.billing.config import billing_settings
    from tests.helpers.stripe import WEBHOOK_SECRET

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/aigw/test/stripe-webhook-secret", Type="SecureString", Value=WEBHOOK_SECRET
    )
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET_PARAMETER", "/aigw/test/stripe-webhook-secret")
    billing_settings.cache_clear()
    assert deliver(stripe_event("customer.subscription.created")).json()["outcome"] == "applied"
    assert deliver(stripe_event("customer.subscription.created"), secret="whsec_other").status == 400
