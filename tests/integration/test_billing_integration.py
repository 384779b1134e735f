"""Billing against DynamoDB Local and a fake Stripe on loopback: limits under concurrency,
the links in a 402 opening real Stripe sessions, and metered usage reported to Stripe."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aigw import clock, invocation, keys, teams
from aigw.billing import account, plans
from aigw.chat import ChatRequest
from aigw.errors import GatewayError
from aigw.table import serialize
from aigw.usage import records as usage_records
from aigw_local import template as tpl
from aigw_local.apigw import LambdaContext
from aigw_local.server import load_handler
from tests.conftest import reset_core
from tests.helpers import ledger
from tests.helpers.apigw import call
from tests.helpers.stripe import WEBHOOK_SECRET, FakeStripe, deliver, open_link, stripe_event

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 50}
_requests = itertools.count()


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    monkeypatch.delenv("DEFAULT_PLAN", raising=False)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_gateway")
    monkeypatch.setenv("STRIPE_API_BASE", fake.url)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("BILLING_LINK_SECRET", "integration-link-secret")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://gw.example/dev")
    reset_core()
    yield fake
    fake.stop()


@pytest.fixture
def acme(fake_stripe: FakeStripe) -> str:
    teams.create_team("acme")
    return keys.create_key("acme").secret


def _parallel(key: str, n: int) -> list[str]:
    """Fire ``n`` calls at once; each returns "ok" or its error code."""
    api_key = keys.authenticate(key)
    request = ChatRequest.model_validate(HELLO)

    def one(_: int) -> str:
        try:
            invocation.chat_completion(api_key, request, request_id=f"req-{next(_requests)}")
        except GatewayError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(n)))


def _records(team: str = "acme") -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day(team, clock.iso(clock.now())[:10])


def test_concurrent_calls_never_pass_the_quota(acme: str) -> None:
    plans.put_plan("tight", plans.PlanSpec(monthly_tokens=600))
    account.assign_plan("acme", "tight")
    outcomes = _parallel(acme, 64)
    assert "ok" in outcomes
    assert "quota_exhausted" in outcomes
    assert set(outcomes) <= {"ok", "quota_exhausted", "admission_contended"}
    ledger.settle()
    view = account.summary("acme")
    records = _records()
    assert len(records) == outcomes.count("ok")
    assert view.tokens_used == sum(r.total_tokens for r in records) <= 600
    assert view.tokens_reserved == 0  # every reservation was settled
    ledger.assert_agrees("acme")


def test_concurrent_calls_never_take_credits_below_zero(acme: str) -> None:
    account.grant_credits("acme", 1_000)
    outcomes = _parallel(acme, 64)
    assert "credits_exhausted" in outcomes
    ledger.settle()
    view = account.summary("acme")
    spent = sum(r.cost_micro_usd for r in _records())
    assert spent > 0
    assert view.credits_micro_usd == 1_000 - spent >= 0
    assert view.credits_reserved_micro_usd == 0
    ledger.assert_agrees("acme")


def test_payment_failed_402_links_to_a_stripe_billing_portal_session(
    acme: str, fake_stripe: FakeStripe
) -> None:
    now = clock.now()
    plans.put_plan("pro-monthly", plans.PlanSpec(monthly_tokens=100_000))
    deliver(stripe_event("customer.subscription.created", at=now))
    deliver(stripe_event("customer.subscription.updated", at=now, status="unpaid"))
    reply = call("POST", CHAT, body=HELLO, key=acme)
    assert reply.status == 402
    url = reply.json()["fix_url"]
    assert url.startswith("https://gw.example/dev/billing/portal?token=")
    opened = open_link(url)
    assert opened.status == 303
    assert opened.header("Location") == "https://billing.stripe.com/p/session/test_cus_TestAcme"
    (sent,) = fake_stripe.calls("/v1/billing_portal/sessions")
    assert sent == {"customer": "cus_TestAcme", "return_url": "https://gw.example/dev/billing/return"}


def test_no_subscription_402_links_to_checkout_for_the_plan(
    acme: str, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKOUT_PLAN", "pro-monthly")
    reset_core()
    plans.put_plan("pro-monthly", plans.PlanSpec(monthly_tokens=100_000))
    fake_stripe.prices["pro-monthly"] = "price_1SgwPro"
    url = call("POST", CHAT, body=HELLO, key=acme).json()["fix_url"]
    opened = open_link(url)
    assert (opened.status, opened.header("Location")) == (
        303,
        "https://checkout.stripe.com/c/pay/cs_test_fake",
    )
    (sent,) = fake_stripe.calls("/v1/checkout/sessions")
    assert sent["mode"] == "subscription"
    assert sent["line_items[0][price]"] == "price_1SgwPro"
    assert sent["client_reference_id"] == "acme"
    assert sent["subscription_data[metadata][team_id]"] == "acme"


def test_credit_pack_checkout_is_a_one_off_payment(acme: str, fake_stripe: FakeStripe) -> None:
    plans.put_plan("credits-10", plans.PlanSpec(kind="credits", credits_micro_usd=10_000_000))
    fake_stripe.prices["credits-10"] = "price_credits10"
    from aigw.billing import stripe_links

    opened = open_link(str(stripe_links.checkout_link("acme", "credits-10")))
    assert opened.status == 303
    (sent,) = fake_stripe.calls("/v1/checkout/sessions")
    assert (sent["mode"], sent["metadata[aigw_credits_micro_usd]"]) == ("payment", "10000000")


def test_altered_links_are_refused(acme: str) -> None:
    from aigw.billing import stripe_links

    url = str(stripe_links.portal_link("acme"))
    reply = open_link(url.replace("acme.", "other.", 1))
    assert (reply.status, reply.json()["code"]) == (400, "invalid_billing_link")


def _stream_event(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventID": f"ev{i}",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": serialize({"pk": item["pk"], "sk": item["sk"]}),
                    "NewImage": serialize(item),
                    "SequenceNumber": f"{100 + i}",
                    "SizeBytes": 200,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026",
            }
            for i, item in enumerate(items)
        ]
    }


def _meter_handler() -> Any:
    spec = next(f for f in tpl.functions(tpl.load()) if f.logical_id == "MeterReportFunction")
    return load_handler(spec)


def test_metered_usage_reaches_stripe_meters_once(acme: str, fake_stripe: FakeStripe) -> None:
    plans.put_plan("pro-monthly", plans.PlanSpec(meter_event_name="aigw_tokens", unlimited=True))
    deliver(stripe_event("customer.subscription.created"))
    body = call("POST", CHAT, body=HELLO, key=acme).json()
    (record,) = _records()
    assert (record.meter_event_name, record.stripe_customer_id) == ("aigw_tokens", "cus_TestAcme")
    raw = usage_records.items_for_day("acme", clock.iso(clock.now())[:10])
    event = _stream_event(raw)
    handler = _meter_handler()
    assert handler(event, LambdaContext("MeterReportFunction", 60)) == {"batchItemFailures": []}
    (sent,) = fake_stripe.calls("/v1/billing/meter_events")
    assert sent["event_name"] == "aigw_tokens"
    assert sent["identifier"] == record.request_id
    assert sent["payload[stripe_customer_id]"] == "cus_TestAcme"
    assert sent["payload[value]"] == str(body["usage"]["total_tokens"])
    # The stream delivers again (at-least-once): Stripe's identifier check keeps it at one.
    assert handler(event, LambdaContext("MeterReportFunction", 60)) == {"batchItemFailures": []}
    assert fake_stripe.meter_identifiers == {record.request_id}


def test_meter_report_failures_are_retried_item_by_item(
    acme: str, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans.put_plan("pro-monthly", plans.PlanSpec(meter_event_name="aigw_tokens", unlimited=True))
    deliver(stripe_event("customer.subscription.created"))
    call("POST", CHAT, body=HELLO, key=acme)
    raw = usage_records.items_for_day("acme", clock.iso(clock.now())[:10])
    monkeypatch.setenv("STRIPE_API_KEY", "rk_wrong")
    reset_core()
    result = _meter_handler()(_stream_event(raw), LambdaContext("MeterReportFunction", 60))
    assert result == {"batchItemFailures": [{"itemIdentifier": "100"}]}


def test_portal_link_without_a_customer_goes_to_checkout(
    acme: str, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigw.billing import stripe_links

    monkeypatch.setenv("CHECKOUT_PLAN", "pro-monthly")
    reset_core()
    plans.put_plan("pro-monthly", plans.PlanSpec(unlimited=True))
    fake_stripe.prices["pro-monthly"] = "price_1SgwPro"
    opened = open_link(str(stripe_links.portal_link("acme")))
    assert (opened.status, opened.header("Location")) == (
        303,
        "https://checkout.stripe.com/c/pay/cs_test_fake",
    )
    assert fake_stripe.calls("/v1/billing_portal/sessions") == []
