"""POST /webhooks/stripe: signatures, every handled event type, duplicates, order, grace."""

from __future__ import annotations

import json
import time

import pytest

from aigw import clock, keys, teams
from aigw.billing import account, plans
from tests.conftest import FakeClock
from tests.helpers import ledger
from tests.helpers.apigw import call
from tests.helpers.sdk import openai_client, refusal
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


def test_a_team_on_a_plan_keeps_it_while_its_new_subscription_is_incomplete(
    acme_key: str, notes: Notes
) -> None:
    """A team on an assigned (or default) plan that subscribes is not cut off while the first
    payment is under way (Checkout, 3-D Secure: up to 23 hours), nor told it lost access."""
    plans.put_plan("starter", plans.PlanSpec(monthly_tokens=10_000))
    account.assign_plan("acme", "starter")
    notes()
    deliver(stripe_event("customer.subscription.created", status="incomplete"))
    assert _chat(acme_key)[0] == 200
    assert account.summary("acme").plan_id == "starter"  # not the unpaid subscription's plan
    ledger.settle()  # the call's lease is handed back before the paid subscription's period
    deliver(stripe_event("customer.subscription.updated", status="active"))
    assert _chat(acme_key)[0] == 200
    assert account.summary("acme").plan_id == "pro-monthly"
    assert [kind for kind, _ in notes() if kind.startswith("Access")] == []


def test_without_a_plan_of_its_own_an_incomplete_subscription_refuses(acme_key: str) -> None:
    deliver(stripe_event("customer.subscription.created", status="incomplete"))
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


# ---- issue 11 item 6: a newer invoice.paid ends a payment failure ---------------------------------


def _past_grace(monkeypatch: pytest.MonkeyPatch) -> int:
    """Subscribed, then a failed payment whose grace (an hour here) has run out; returns the
    time the clock now says."""
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now))
    deliver(stripe_event("invoice.payment_failed", at=now))  # created now+60
    deliver(stripe_event("customer.subscription.updated", at=now))  # past_due, now+60
    later = now + 3_700
    monkeypatch.setattr(clock, "now", lambda: later)
    monkeypatch.setattr(clock, "now_ms", lambda: later * 1000)
    account.forget()
    err = refusal(openai_client(_key()))
    assert (err.status_code, err.code) == (402, "payment_failed")
    return later


def _key() -> str:
    return keys.create_key("acme", name="sdk").secret


def test_a_newer_invoice_paid_alone_ends_the_payment_failure(
    acme_key: str, notes: Notes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on the old main: calls stayed 402 payment_failed until a separate
    customer.subscription.updated(active) arrived."""
    later = _past_grace(monkeypatch)
    notes()
    paid = stripe_event("invoice.paid", at=later)
    assert deliver(paid).json()["outcome"] == "applied"
    completion = openai_client(acme_key).chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert completion.status_code == 200
    assert completion.headers.get("x-billing-warning") is None  # no grace warning left either
    view = account.summary("acme")
    assert (view.subscription_status, view.grace_until, view.allowed) == ("active", None, True)
    assert [kind for kind, _ in notes()] == ["Access Restored"]
    assert deliver(paid).json()["outcome"] == "duplicate"
    # Stripe's own subscription.updated(active) arriving afterwards changes nothing visible.
    ledger.settle()  # the call's lease is handed back before the event starts a new period
    deliver(stripe_event("customer.subscription.resumed", at=later + 60))
    monkeypatch.setattr(clock, "now", lambda: later + 120)  # into the period the event began
    monkeypatch.setattr(clock, "now_ms", lambda: (later + 120) * 1000)
    assert _chat(acme_key)[0] == 200


def test_after_invoice_paid_only_a_newer_subscription_event_refuses_again(
    acme_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = _past_grace(monkeypatch)
    deliver(stripe_event("invoice.paid", at=later))  # created later+180
    # A past_due created before the payment, delivered late (Stripe retries for days): stale.
    late = stripe_event("customer.subscription.updated", at=later)  # later+60
    assert deliver(late).json()["outcome"] == "unchanged"
    assert _chat(acme_key)[0] == 200
    # A newer one says otherwise: the subscription is unpaid again.
    ledger.settle()  # the call's lease is handed back before the event starts a new period
    newer = stripe_event("customer.subscription.updated", at=later + 600, status="unpaid")
    assert deliver(newer).json()["outcome"] == "applied"
    assert refusal(openai_client(acme_key)).code == "payment_failed"


def test_invoice_paid_for_an_older_invoice_or_another_subscription_ends_nothing(
    acme_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = _past_grace(monkeypatch)
    other_sub = stripe_event("invoice.paid", at=later, id="in_OtherSub")
    other_sub["data"]["object"]["parent"]["subscription_details"]["subscription"] = "sub_Other"
    deliver(other_sub)
    assert refusal(openai_client(acme_key)).code == "payment_failed"
    older_invoice = stripe_event(
        "invoice.paid", at=later + 10, id="in_Older", created=clock.now() - 86_400 * 40
    )
    deliver(older_invoice)  # an old open invoice paid late; the newer one's failure stands
    assert refusal(openai_client(acme_key)).code == "payment_failed"
    deliver(stripe_event("invoice.paid", at=later + 20))  # the invoice that failed
    assert _chat(acme_key)[0] == 200


@pytest.mark.parametrize("paid_first", [False, True])
def test_a_payment_and_a_failure_of_the_same_second_end_paid_in_either_order(
    acme_key: str, paid_first: bool
) -> None:
    """Stripe guarantees no order: the outcome must not depend on which arrives first."""
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now - 600))
    unpaid = stripe_event("customer.subscription.updated", at=now - 60, status="unpaid")  # now
    paid = stripe_event("invoice.paid", at=now - 180)  # created now as well
    assert unpaid["created"] == paid["created"]
    for event in (paid, unpaid) if paid_first else (unpaid, paid):
        deliver(event)
    assert _chat(acme_key)[0] == 200
    assert account.summary("acme").subscription_status == "active"


def test_a_failure_delivered_after_the_payment_that_settled_it_changes_nothing(acme_key: str) -> None:
    """Stripe retried the payment and it succeeded; the past_due from before arrives last."""
    now = clock.now()
    deliver(stripe_event("customer.subscription.created", at=now - 1_000))
    deliver(stripe_event("invoice.paid", at=now - 100))  # created now+80
    deliver(stripe_event("customer.subscription.updated", at=now - 100))  # past_due, now-40
    status, _, headers = _chat(acme_key)
    assert status == 200
    assert "X-Billing-Warning" not in headers  # no grace period started
    assert (account.summary("acme").subscription_status, account.summary("acme").grace_until) == (
        "active",
        None,
    )


@pytest.mark.parametrize("status", ["unpaid", "incomplete"])
def test_invoice_paid_ends_unpaid_and_incomplete_too(acme_key: str, status: str) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.updated", at=now, status=status))
    assert refusal(openai_client(acme_key)).code == "payment_failed"
    deliver(stripe_event("invoice.paid", at=now))  # created now+180, after the update at now+60
    assert _chat(acme_key)[0] == 200


def test_invoice_paid_does_not_resume_a_paused_or_canceled_subscription(acme_key: str) -> None:
    now = clock.now()
    deliver(stripe_event("customer.subscription.paused", at=now))  # now+60
    deliver(stripe_event("invoice.paid", at=now))  # now+180
    assert refusal(openai_client(acme_key)).code == "subscription_paused"


# ---- issue 11 item 7: a customer belongs to one team ----------------------------------------------


def _beta() -> str:
    teams.create_team("beta")
    return keys.create_key("beta").secret


def test_a_mapped_customer_is_never_re_pointed_to_another_team(
    acme_key: str, notes: Notes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on the old main: checkout for beta with acme's customer made cus_TestAcme beta's;
    acme's later payment failure then landed on beta, and beta's portal opened acme's customer."""
    beta_key = _beta()
    deliver(stripe_event("checkout.session.completed.subscription"))  # cus_TestAcme -> acme
    deliver(stripe_event("customer.subscription.created"))
    notes()
    hijack = stripe_event(
        "checkout.session.completed.subscription",
        client_reference_id="beta",
        metadata={"team_id": "beta", "aigw_plan": "pro-monthly"},
    )
    reply = deliver(hijack)
    assert (reply.status, reply.json()) == (200, {"received": True, "outcome": "conflict"})
    assert account.summary("beta").customer_id is None
    ((kind, detail),) = notes()
    assert (kind, detail["team_id"], detail["claimed_team"]) == ("Billing Conflict", "acme", "beta")
    assert deliver(hijack).json()["outcome"] == "conflict"  # a retry is answered the same

    # The same through a subscription event naming beta for acme's customer.
    sub = stripe_event("customer.subscription.created", metadata={"team_id": "beta"})
    assert deliver(sub).json()["outcome"] == "conflict"

    # acme's payment failure (no metadata: found by the customer) is acme's, not beta's.
    failed = stripe_event("invoice.payment_failed")
    failed["data"]["object"]["parent"]["subscription_details"]["metadata"] = {}
    deliver(failed)
    assert account.load("acme").first_failed_at is not None
    assert account.load("beta").first_failed_at is None
    assert _chat(beta_key)[0] == 402  # beta gained nothing
    assert refusal(openai_client(beta_key)).code == "no_subscription"
    links = call("GET", "/billing/status", key=beta_key).json()["links"]
    assert links["portal"] is None  # beta has no portal: it would have been acme's customer


def test_a_team_with_a_customer_does_not_take_another(acme_key: str) -> None:
    """Fails on the old main: a second customer replaced acme's and was mapped to it."""
    deliver(stripe_event("checkout.session.completed.subscription"))  # acme: cus_TestAcme
    other = stripe_event("checkout.session.completed.credits", customer="cus_Stranger")
    assert deliver(other).json()["outcome"] == "conflict"
    view = account.summary("acme")
    assert (view.customer_id, view.credits_micro_usd) == ("cus_TestAcme", 0)
    # cus_Stranger was not mapped to acme: its events, naming no team, are not acme's.
    stray = stripe_event("customer.subscription.created", metadata={}, customer="cus_Stranger")
    assert deliver(stray).json()["outcome"] == "ignored"
    assert _code(acme_key) == "no_subscription"


def test_the_customer_mapping_write_is_conditional(acme_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two events racing to map one customer: the one that read "unmapped" before the other
    committed must not overwrite it. Fails on the old main (the mapping Put was unconditional)."""
    from aigw.billing import stripe_events

    _beta()
    deliver(stripe_event("checkout.session.completed.subscription"))  # cus_TestAcme -> acme
    real = stripe_events._customer_team
    reads: list[str | None] = []

    def stale_once(customer: str | None) -> str | None:
        found = None if not reads else real(customer)  # the first read predates acme's commit
        reads.append(found)
        return found

    monkeypatch.setattr(stripe_events, "_customer_team", stale_once)
    racing = stripe_event(
        "checkout.session.completed.credits", client_reference_id="beta", metadata={"team_id": "beta"}
    )
    assert deliver(racing).json()["outcome"] == "conflict"
    assert reads == [None, "acme"]  # refused by the condition, decided again, found acme
    monkeypatch.setattr(stripe_events, "_customer_team", real)
    assert real("cus_TestAcme") == "acme"
    assert account.summary("beta").credits_micro_usd == 0


# ---- issue 11 item 5, through Stripe: a subscription whose price maps to a credit pack ------------


def test_a_subscription_priced_as_a_credit_pack_grants_nothing_by_itself(acme_key: str) -> None:
    """Fails on the old main: the subscription made the credit pack the team's plan, with no
    limits, and calls were free."""
    event = stripe_event("customer.subscription.created")
    event["data"]["object"]["items"]["data"][0]["price"]["lookup_key"] = "credits-10"
    assert deliver(event).json()["outcome"] == "applied"
    err = refusal(openai_client(acme_key))
    assert (err.status_code, err.code) == (402, "no_subscription")
    assert "credit pack" in err.message
    deliver(stripe_event("checkout.session.completed.credits"))  # bought credits: they pay
    raw = openai_client(acme_key).chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert int(raw.headers["x-billing-credits-remaining-micro-usd"]) < 10_000_000
    assert account.summary("acme").funding == "credits"
