"""Billing as an SDK user meets it: 402 and 429 read through the official openai SDK."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import Runner
from tests.e2e.test_openai_sdk import _aigw, _client
from tests.helpers.stripe import signature, stripe_event

HELLO = [{"role": "user", "content": "Hello there"}]


def _team_on_plan(runner: Runner, team: str, *plan_args: str) -> openai.OpenAI:
    _aigw(runner, "teams", "create", team)
    _aigw(runner, "plans", "create", f"{team}-plan", *plan_args)
    _aigw(runner, "billing", "assign", "--team", team, "--plan", f"{team}-plan")
    key = _aigw(runner, "keys", "create", "--team", team)
    return _client(runner, str(key["secret"]))


def test_the_demo_team_works_out_of_the_box_and_sees_its_quota(runner: Runner) -> None:
    raw = _client(runner).chat.completions.with_raw_response.create(model="mock/echo", messages=HELLO)
    assert raw.parse().choices[0].message.content == "Echo: Hello there"
    assert int(raw.headers["x-billing-quota-tokens-remaining"]) > 0


def test_402_carries_code_message_and_fix_link_into_the_sdk(runner: Runner) -> None:
    client = _team_on_plan(runner, "e2e-quota", "--tokens", "200")
    for _ in range(50):
        try:
            client.chat.completions.create(model="mock/echo", messages=HELLO, max_tokens=20)
        except openai.APIStatusError as exc:
            err = exc
            break
    else:
        pytest.fail("a 200-token quota never ran out")
    assert err.status_code == 402
    assert err.code == "quota_exhausted"
    assert "monthly tokens are left" in err.message
    assert err.response.headers["content-type"] == "application/problem+json"
    link = err.response.headers["link"]
    assert link.startswith(f"<{runner.base_url}/billing/")
    assert link.endswith('>; rel="payment"')
    problem = err.response.json()
    assert (problem["status"], problem["type"]) == (402, "urn:aigw:problem:quota_exhausted")
    assert problem["access_returns_at"].endswith("Z")
    runner.leases_returned("e2e-quota")  # a worker hands its lease back after a second idle
    view = _aigw(runner, "billing", "show", "--team", "e2e-quota")
    assert (view["allowed"], view["tokens_reserved"]) == (True, 0)
    assert int(str(view["tokens_used"])) <= 200


def test_rate_limits_are_429_with_retry_after(runner: Runner) -> None:
    client = _team_on_plan(runner, "e2e-rpm", "--rpm", "1")
    client.chat.completions.create(model="mock/echo", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="mock/echo", messages=HELLO)
    assert limited.value.code == "requests_per_minute_exceeded"
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60


# ---- issue 11, items 5 to 8, as a user and an attacker meet them on the local runner --------------


def _deliver(runner: Runner, event: dict[str, object]) -> str:
    payload = json.dumps(event)
    reply = httpx.post(
        runner.base_url + "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": signature(payload), "Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["outcome"])


def _subscription(team: str, customer: str, **obj: object) -> dict[str, object]:
    return stripe_event(
        "customer.subscription.created",
        id=f"sub_{team}",
        customer=customer,
        metadata={"team_id": team},
        **obj,
    )


def test_a_credit_pack_is_not_a_plan_and_no_limit_is_said(runner: Runner) -> None:
    _aigw(runner, "teams", "create", "e2e-prepaid")
    _aigw(runner, "plans", "create", "e2e-pack", "--kind", "credits", "--credits", "10")
    _aigw(runner, "billing", "grant", "--team", "e2e-prepaid", "--usd", "1")
    refused = runner.cli("billing", "assign", "--team", "e2e-prepaid", "--plan", "e2e-pack")
    assert refused.returncode == 1
    assert "400" in refused.stderr
    assert "credit pack" in refused.stderr
    view = _aigw(runner, "billing", "show", "--team", "e2e-prepaid")
    assert (view["plan_id"], view["credits_micro_usd"]) == ("local-free", 1_000_000)  # unchanged

    nolimit = runner.cli("plans", "create", "e2e-open")
    assert nolimit.returncode == 1
    assert "--unlimited" in nolimit.stderr
    assert _aigw(runner, "plans", "create", "e2e-open", "--unlimited")["unlimited"] is True
    server_side = httpx.put(
        runner.base_url + "/admin/plans/e2e-open2",
        json={"name": "no limits said"},
        headers={"Authorization": f"Bearer {runner.admin_key}"},
    )
    assert (server_side.status_code, server_side.json()["param"]) == (400, "unlimited")


def test_invoice_paid_restores_and_a_customer_stays_with_its_team(runner: Runner) -> None:
    _aigw(runner, "plans", "create", "pro-monthly", "--tokens", "100000")
    for team in ("e2e-paid", "e2e-thief"):
        _aigw(runner, "teams", "create", team)
    paid = _client(runner, str(_aigw(runner, "keys", "create", "--team", "e2e-paid")["secret"]))
    thief = _client(runner, str(_aigw(runner, "keys", "create", "--team", "e2e-thief")["secret"]))
    now = int(time.time())
    assert _deliver(runner, _subscription("e2e-paid", "cus_E2EPaid", status="unpaid")) == "applied"
    with pytest.raises(openai.APIStatusError) as unpaid:
        paid.chat.completions.create(model="mock/echo", messages=HELLO)
    assert (unpaid.value.status_code, unpaid.value.code) == (402, "payment_failed")

    invoice = stripe_event("invoice.paid", at=now, customer="cus_E2EPaid")
    invoice["data"]["object"]["parent"]["subscription_details"] = {
        "metadata": {"team_id": "e2e-paid"},
        "subscription": "sub_e2e-paid",
    }
    assert _deliver(runner, invoice) == "applied"
    assert paid.chat.completions.create(model="mock/echo", messages=HELLO).choices[0].message.content

    hijack = stripe_event(
        "checkout.session.completed.subscription",
        customer="cus_E2EPaid",
        client_reference_id="e2e-thief",
        metadata={"team_id": "e2e-thief"},
    )
    assert _deliver(runner, hijack) == "conflict"
    view = _aigw(runner, "billing", "show", "--team", "e2e-thief")
    assert view.get("customer_id") is None
    assert thief.chat.completions.create(model="mock/echo", messages=HELLO)  # on the local free plan


def test_a_402_link_is_only_in_fix_url_and_link_and_dies_with_its_key(runner: Runner) -> None:
    _aigw(runner, "teams", "create", "e2e-links")
    _aigw(runner, "plans", "create", "e2e-links-plan", "--tokens", "10")
    _aigw(runner, "billing", "assign", "--team", "e2e-links", "--plan", "e2e-links-plan")
    issued = _aigw(runner, "keys", "create", "--team", "e2e-links")
    client = _client(runner, str(issued["secret"]))
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="mock/echo", messages=HELLO, max_tokens=50)
    err = refused.value
    assert (err.status_code, err.code) == (402, "quota_exhausted")
    assert "token=" not in err.message
    problem = err.response.json()
    assert "token=" not in problem["detail"]
    assert err.response.headers["link"] == f'<{problem["fix_url"]}>; rel="payment"'
    link = problem["fix_url"]
    # The link verifies and opens a Checkout session (the runner's Stripe simulator)...
    opened = httpx.get(link)
    assert opened.status_code == 303, opened.text
    assert "/checkout/" in opened.headers["location"]
    # ...until the key that obtained it is revoked.
    _aigw(runner, "keys", "revoke", str(issued["key_id"]), "--team", "e2e-links")
    dead = httpx.get(link)
    assert (dead.status_code, dead.json()["code"]) == (400, "revoked_billing_link")
