"""The local Stripe simulator (aigw_local/stripe_sim): Stripe's published object shapes, the events
of each flow in Stripe's order, and what the gateway's real webhook code makes of them.

Events are delivered through the real ``POST /webhooks/stripe`` handler (on moto), signed with
the stripe library's scheme, exactly as the simulator signs them for the runner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stripe

from aigw import teams
from aigw.billing import account as billing_account
from aigw.billing import plans
from aigw_local.stripe_sim.account import Account, Outcome, PlanInfo
from aigw_local.stripe_sim.api import decode_form
from aigw_local.stripe_sim.objects import API_VERSION
from aigw_local.stripe_sim.store import Store
from tests.conftest import reset_core
from tests.helpers.apigw import EVENTS
from tests.helpers.stripe import WEBHOOK_SECRET, deliver

Obj = dict[str, Any]
PAGES = "http://127.0.0.1:3000/_stripe"
FIXTURES: dict[str, Obj] = json.loads((EVENTS / "stripe" / "openapi-fixtures.json").read_text())["resources"]
LIBRARY: dict[str, type] = {
    "subscription": stripe.Subscription,
    "subscription_item": stripe.SubscriptionItem,
    "invoice": stripe.Invoice,
    "line_item": stripe.InvoiceLineItem,
    "checkout.session": stripe.checkout.Session,
    "customer": stripe.Customer,
    "price": stripe.Price,
    "product": stripe.Product,
    "payment_intent": stripe.PaymentIntent,
    "payment_method": stripe.PaymentMethod,
    "billing_portal.session": stripe.billing_portal.Session,
    "invoice_payment": stripe.InvoicePayment,
    "test_helpers.test_clock": stripe.test_helpers.TestClock,
    "event": stripe.Event,
    "plan": stripe.Plan,
}
GOOD, DECLINED, THREE_DS = "4242424242424242", "4000000000000002", "4000002760003184"


def _plans(lookup_key: str) -> PlanInfo | None:
    return {
        "local-pro": PlanInfo("local-pro", "Local Pro", None),
        "local-credits": PlanInfo("local-credits", "Local credits", 1000),
    }.get(lookup_key)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    return Account(Store(tmp_path / "sim.sqlite3"), plans=_plans)


@pytest.fixture
def team(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("DEFAULT_PLAN", "")
    reset_core()
    teams.create_team("acme")
    plans.put_plan("local-pro", plans.PlanSpec(name="Local Pro", monthly_tokens=1000))
    plans.put_plan(
        "local-credits", plans.PlanSpec(name="Credits", kind="credits", credits_micro_usd=10_000_000)
    )
    return "acme"


def _checkout(account: Account, plan: str = "local-pro", *, customer: str | None = None) -> Obj:
    (price,) = account.prices([plan])
    params: Obj = {
        "mode": "subscription" if price["type"] == "recurring" else "payment",
        "line_items": [{"price": price["id"], "quantity": "1"}],
        "client_reference_id": "acme",
        "success_url": "http://127.0.0.1:3000/billing/return?checkout=success",
        "cancel_url": "http://127.0.0.1:3000/billing/return?checkout=cancel",
        "metadata": {"team_id": "acme", "aigw_plan": plan},
    }
    if price["type"] == "recurring":
        params["subscription_data"] = {"metadata": {"team_id": "acme", "aigw_plan": plan}}
    if customer:
        params["customer"] = customer
    return account.create_checkout_session(params, page_base=PAGES)


def _apply(outcome: Outcome) -> list[str]:
    """Deliver the outcome's events to the real webhook handler; the handler's outcomes."""
    results = []
    for event in outcome.events:
        reply = deliver(event)
        assert reply.status == 200, reply.body
        results.append(reply.json()["outcome"])
    return results


def _types(outcome: Outcome) -> list[str]:
    return [e["type"] for e in outcome.events]


def _subscribe(account: Account) -> tuple[Outcome, Obj]:
    session = _checkout(account)
    paid = account.pay_checkout(session["id"], card=GOOD, email="billing@acme.test", authentication=None)
    assert paid.ok
    view = account.customer_view(str(paid.customer))
    return paid, view.subscriptions[0]


# ---- shapes ---------------------------------------------------------------------------------------


def _declared(kind: str) -> set[str]:
    names: set[str] = set()
    for cls in LIBRARY[kind].__mro__:
        names |= {n for n in getattr(cls, "__annotations__", {}) if n[0].islower()}
    return names


def _check_shape(obj: Obj, kind: str) -> None:
    published = set(FIXTURES[kind])
    declared = _declared(kind)
    keys = set(obj)
    # Every field Stripe's fixture has that this library version still declares is there...
    assert (published & declared) - keys == set(), kind
    # ...and nothing Stripe does not have.
    assert keys - (published | declared) == set(), kind


def _every_object(account: Account) -> list[Obj]:
    objects: list[Obj] = []
    paid, sub = _subscribe(account)
    objects += [e["data"]["object"] for e in paid.events]
    account.update_card(str(paid.customer), card=DECLINED)
    renewed = account.renew(sub["id"])
    objects += [e["data"]["object"] for e in renewed.events]
    credits = _checkout(account, "local-credits", customer=str(paid.customer))
    bought = account.pay_checkout(
        credits["id"], card=THREE_DS, email="x@acme.test", authentication="complete"
    )
    objects += [e["data"]["object"] for e in bought.events]
    objects.append(account.create_portal_session({"customer": paid.customer}, page_base=PAGES))
    return objects


def test_objects_have_the_fields_of_stripes_published_objects(account: Account) -> None:
    seen = set()
    for obj in _every_object(account):
        kind = obj["object"]
        _check_shape(obj, kind)
        seen.add(kind)
        if kind == "subscription":
            item = obj["items"]["data"][0]
            _check_shape(item, "subscription_item")
            _check_shape(item["price"], "price")
            _check_shape(item["plan"], "plan")
        if kind == "invoice":
            _check_shape(obj["lines"]["data"][0], "line_item")
    assert seen >= {
        "customer",
        "payment_method",
        "subscription",
        "invoice",
        "payment_intent",
        "invoice_payment",
        "checkout.session",
        "test_helpers.test_clock",
        "billing_portal.session",
    }


def test_events_are_stripe_events_of_the_librarys_api_version(account: Account) -> None:
    paid, _ = _subscribe(account)
    for event in paid.events:
        _check_shape(event, "event")
        assert event["api_version"] == API_VERSION == stripe.api_version
        assert event["id"].startswith("evt_")
        assert not any(k.startswith("_") for k in event["data"]["object"])
        parsed = stripe.Event.construct_from(event, "sk_test")
        assert parsed.data.object.object == event["data"]["object"]["object"]


# ---- flows: Stripe's events, in Stripe's order -------------------------------------------------------


def test_checkout_of_a_subscription_sends_stripes_sequence(account: Account) -> None:
    paid, sub = _subscribe(account)
    assert _types(paid) == [
        "customer.created",
        "payment_method.attached",
        "customer.updated",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]
    created = paid.events[3]["data"]["object"]
    assert created["status"] == "incomplete"
    assert paid.events[11]["data"]["previous_attributes"] == {"status": "incomplete"}
    assert sub["status"] == "active"
    assert sub["metadata"] == {"team_id": "acme", "aigw_plan": "local-pro"}
    assert sub["items"]["data"][0]["price"]["lookup_key"] == "local-pro"
    completed = paid.events[-1]["data"]["object"]
    assert (completed["status"], completed["payment_status"], completed["subscription"]) == (
        "complete",
        "paid",
        sub["id"],
    )
    invoice = paid.events[9]["data"]["object"]
    assert invoice["billing_reason"] == "subscription_create"
    assert invoice["parent"]["subscription_details"] == {
        "metadata": {"team_id": "acme", "aigw_plan": "local-pro"},
        "subscription": sub["id"],
    }
    assert invoice["hosted_invoice_url"] == f"{PAGES}/invoice/{invoice['id']}"


def test_a_declined_card_or_failed_authentication_leaves_checkout_open(account: Account) -> None:
    session = _checkout(account)
    declined = account.pay_checkout(session["id"], card=DECLINED, email="a@acme.test", authentication=None)
    assert (declined.error, declined.events) == ("Your card was declined.", [])
    asked = account.pay_checkout(session["id"], card=THREE_DS, email="a@acme.test", authentication=None)
    assert (asked.needs_authentication, asked.events) == (True, [])
    failed = account.pay_checkout(session["id"], card=THREE_DS, email="a@acme.test", authentication="fail")
    assert "unable to authenticate" in str(failed.error)
    assert account.store.get(session["id"])["status"] == "open"  # type: ignore[index]
    done = account.pay_checkout(session["id"], card=THREE_DS, email="a@acme.test", authentication="complete")
    assert done.ok
    assert "payment_intent.requires_action" in _types(done)
    assert account.pay_checkout(session["id"], card=GOOD, email="a@acme.test", authentication=None).error


def test_renewal_moves_the_period_like_a_test_clock(account: Account) -> None:
    _, sub = _subscribe(account)
    item = sub["items"]["data"][0]
    renewed = account.renew(sub["id"])
    assert _types(renewed) == [
        "test_helpers.test_clock.advancing",
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "test_helpers.test_clock.ready",
    ]
    moved = renewed.events[1]["data"]
    assert moved["object"]["items"]["data"][0]["current_period_start"] == item["current_period_end"]
    assert (
        moved["previous_attributes"]["items"]["data"][0]["current_period_start"]
        == item["current_period_start"]
    )
    assert renewed.events[-1]["data"]["object"]["frozen_time"] == item["current_period_end"]
    invoice = renewed.events[7]["data"]["object"]
    assert (invoice["billing_reason"], invoice["period_end"]) == (
        "subscription_cycle",
        item["current_period_end"],
    )


def test_renewal_with_a_declined_card_or_3ds_makes_the_subscription_past_due(account: Account) -> None:
    paid, sub = _subscribe(account)
    account.update_card(str(paid.customer), card=DECLINED)
    declined = account.renew(sub["id"])
    assert _types(declined)[5:] == [
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "customer.subscription.updated",
        "test_helpers.test_clock.ready",
    ]
    assert declined.events[7]["data"]["object"]["status"] == "past_due"
    failed = declined.events[6]["data"]["object"]
    assert (failed["attempt_count"], failed["status"]) == (1, "open")

    account.update_card(str(paid.customer), card=THREE_DS)
    action = account.renew(sub["id"])
    assert "invoice.payment_action_required" in _types(action)
    assert _types(action).index("invoice.payment_failed") < _types(action).index(
        "invoice.payment_action_required"
    )


def test_paying_the_failed_invoice_makes_the_subscription_active_again(account: Account) -> None:
    paid, sub = _subscribe(account)
    account.update_card(str(paid.customer), card=DECLINED)
    declined = account.renew(sub["id"])
    invoice = next(e["data"]["object"] for e in declined.events if e["type"] == "invoice.payment_failed")
    again = account.pay_invoice(invoice["id"], card=DECLINED, authentication=None)
    assert again.error == "Your card was declined."
    assert _types(again)[-1] == "invoice.payment_failed"
    assert again.events[-1]["data"]["object"]["attempt_count"] == 2
    settled = account.pay_invoice(invoice["id"], card=GOOD, authentication=None)
    assert _types(settled) == [
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    assert settled.events[-1]["data"]["previous_attributes"] == {"status": "past_due"}
    assert account.pay_invoice(invoice["id"], card=GOOD, authentication=None).error


def test_flows_are_stamped_in_order(account: Account) -> None:
    paid, sub = _subscribe(account)
    canceled = account.cancel(sub["id"], at_period_end=True)
    assert canceled.events[0]["created"] > paid.events[-1]["created"]


def test_cancel_at_period_end_then_renew_ends_the_subscription(account: Account) -> None:
    _, sub = _subscribe(account)
    scheduled = account.cancel(sub["id"], at_period_end=True)
    assert _types(scheduled) == ["customer.subscription.updated"]
    change = scheduled.events[0]["data"]
    assert change["object"]["cancel_at_period_end"] is True
    assert change["previous_attributes"]["cancel_at_period_end"] is False
    assert _types(account.keep(sub["id"])) == ["customer.subscription.updated"]
    account.cancel(sub["id"], at_period_end=True)
    ended = account.renew(sub["id"])
    assert _types(ended)[1] == "customer.subscription.deleted"
    assert ended.events[1]["data"]["object"]["status"] == "canceled"
    assert account.renew(sub["id"]).error


# ---- the gateway's webhook code on these events -------------------------------------------------------


def test_the_gateway_applies_every_flow(account: Account, team: str) -> None:
    paid, sub = _subscribe(account)
    outcomes = _apply(paid)
    assert outcomes.count("applied") >= 3  # subscription created, invoice paid, subscription updated
    assert set(outcomes) <= {"applied", "ignored", "unchanged"}
    state = billing_account.load(team)
    assert (state.sub_status, state.sub_plan_id, state.customer_id) == ("active", "local-pro", paid.customer)
    first_period = state.period_start

    _apply(account.update_card(str(paid.customer), card=DECLINED))
    declined = account.renew(sub["id"])
    _apply(declined)
    state = billing_account.load(team)
    assert state.sub_status == "past_due"
    assert state.first_failed_at is not None
    assert state.period_start is not None
    assert first_period is not None
    assert state.period_start > first_period  # the period moved: counters reset
    assert billing_account.summary(team).allowed  # in its grace period

    invoice = next(e["data"]["object"] for e in declined.events if e["type"] == "invoice.payment_failed")
    _apply(account.pay_invoice(invoice["id"], card=GOOD, authentication=None))
    state = billing_account.load(team)
    assert (state.sub_status, state.first_failed_at) == ("active", None)

    _apply(account.cancel(sub["id"], at_period_end=False))
    summary = billing_account.summary(team)
    assert (summary.allowed, summary.refusal_code, summary.subscription_status) == (
        False,
        "subscription_inactive",
        "canceled",
    )


def test_credits_bought_through_checkout_reach_the_gateway(account: Account, team: str) -> None:
    session = _checkout(account, "local-credits")
    assert session["mode"] == "payment"
    bought = account.pay_checkout(session["id"], card=GOOD, email="a@acme.test", authentication=None)
    assert _types(bought) == [
        "customer.created",
        "payment_intent.created",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    _apply(bought)
    assert billing_account.load(team).credits == 10_000_000


# ---- the API -------------------------------------------------------------------------------------------


def test_form_encoding_as_the_stripe_library_sends_it() -> None:
    body = (
        "line_items[0][price]=price_1&line_items[0][quantity]=1&mode=subscription&"
        "metadata[team_id]=acme&subscription_data[metadata][team_id]=acme&lookup_keys[0]=a&lookup_keys[1]=b"
    )
    assert decode_form(body) == {
        "line_items": [{"price": "price_1", "quantity": "1"}],
        "mode": "subscription",
        "metadata": {"team_id": "acme"},
        "subscription_data": {"metadata": {"team_id": "acme"}},
        "lookup_keys": ["a", "b"],
    }


def test_prices_exist_for_the_gateways_plans_only(account: Account) -> None:
    (pro,) = account.prices(["local-pro"])
    assert (pro["type"], pro["unit_amount"], pro["recurring"]["interval"]) == ("recurring", 2000, "month")
    assert account.prices(["local-pro"]) == [pro]  # made once
    (credits,) = account.prices(["local-credits"])
    assert (credits["type"], credits["unit_amount"], credits["recurring"]) == ("one_time", 1000, None)
    assert account.prices(["no-such-plan"]) == []
