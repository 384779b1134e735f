"""The two ways ``make dev`` does billing: Stripe's API with test keys, or the simulator without.

Both end in the same place: signed events at the gateway's own ``POST /webhooks/stripe``, run by
the same webhook code. With keys, the runner talks to Stripe (here the fake Stripe API of
tests/helpers/stripe.py, as the stripe library would) and events arrive as ``stripe listen``
forwards them; without, the simulator serves Checkout and sends them itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import httpx
import pytest

from aigw_local.dynamodb_local import free_port
from tests.e2e.conftest import Started, start_runner
from tests.helpers.stripe import WEBHOOK_SECRET, FakeStripe, signature, stripe_event

pytestmark = pytest.mark.e2e
TEAM = "modes"


def _team_out_of_quota(base: str, admin_key: str) -> str:
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"})
    assert admin.put("/admin/plans/nothing-left", json={"monthly_tokens": 0}).status_code < 300
    assert admin.post("/admin/teams", json={"team_id": TEAM}).status_code == 201
    assert admin.put(f"/admin/teams/{TEAM}/plan", json={"plan_id": "nothing-left"}).status_code < 300
    return str(admin.post(f"/admin/teams/{TEAM}/keys", json={"name": "k"}).json()["secret"])


def _refused(base: str, key: str) -> dict[str, object]:
    reply = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert reply.status_code == 402
    problem: dict[str, object] = reply.json()
    return problem


def _status(base: str, key: str) -> dict[str, object]:
    reply = httpx.get(base + "/billing/status", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200
    status: dict[str, object] = reply.json()
    return status


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    fake.prices["local-pro"] = "price_1LocalPro"
    yield fake
    fake.stop()


def _runner(env: dict[str, str], *args: str) -> tuple[Started, str]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    started = start_runner({**clean, "PORT": str(port), **env}, *args)
    return started, f"http://127.0.0.1:{port}"


def test_with_stripe_test_keys_the_real_stripe_flow_is_used(fake_stripe: FakeStripe) -> None:
    started, base = _runner(
        {
            "STRIPE_API_KEY": "sk_test_0123456789",
            "STRIPE_API_BASE": fake_stripe.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    try:
        assert "Stripe:          Stripe's API with your STRIPE_API_KEY" in "".join(started.output)
        assert httpx.get(base + "/_stripe/").status_code == 404  # no simulator
        key = _team_out_of_quota(base, started.keys["admin"])

        fix = httpx.get(str(_refused(base, key)["fix_url"]))
        assert fix.status_code == 303
        assert fix.headers["Location"] == "https://checkout.stripe.com/c/pay/cs_test_fake"
        (session,) = fake_stripe.calls("/v1/checkout/sessions")
        assert (session["client_reference_id"], session["line_items[0][price]"]) == (TEAM, "price_1LocalPro")
        assert session["success_url"] == base + "/billing/return?checkout=success"

        # What 'stripe listen --forward-to .../webhooks/stripe' delivers after the payment.
        for name, fields in (
            (
                "checkout.session.completed.subscription",
                {"client_reference_id": TEAM, "metadata": {"team_id": TEAM}},
            ),
            ("customer.subscription.created", {"metadata": {"team_id": TEAM}}),
        ):
            event = stripe_event(name, **fields)
            if name.startswith("customer.subscription"):
                event["data"]["object"]["items"]["data"][0]["price"]["lookup_key"] = "local-pro"
            payload = json.dumps(event)
            reply = httpx.post(
                base + "/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature(payload)}
            )
            assert reply.json()["outcome"] == "applied", reply.text
        status = _status(base, key)
        assert (status["allowed"], status["plan_id"], status["subscription_status"]) == (
            True,
            "local-pro",
            "active",
        )
    finally:
        started.stop()


def test_without_keys_the_simulator_serves_every_worker() -> None:
    """Checkout made through one process, paid through another: the simulator keeps its state
    where every worker sees it."""
    started, base = _runner({}, "--workers", "2")
    try:
        key = _team_out_of_quota(base, started.keys["admin"])
        refused = _refused(base, key)
        browser = httpx.Client(follow_redirects=False)
        checkout = browser.get(str(refused["fix_url"])).headers["Location"]
        assert re.fullmatch(re.escape(base) + r"/_stripe/checkout/cs_test_\w+", checkout)
        for _ in range(4):  # whichever process answers, the session is there
            assert "Simulated Stripe" in browser.get(checkout).text
        paid = browser.post(checkout, data={"email": "ops@modes.test", "card": "4242424242424242"})
        assert (paid.status_code, paid.headers["Location"]) == (
            303,
            base + "/billing/return?checkout=success",
        )
        back = browser.get(paid.headers["Location"])
        assert (back.status_code, back.headers["Location"]) == (303, "../portal?checkout=success#/billing")
        status = _status(base, key)
        assert (status["allowed"], status["plan_id"], status["subscription_status"]) == (
            True,
            "local-pro",
            "active",
        )

        # The simulator's Stripe API answers like Stripe's: keys are checked, errors are Stripe's.
        api = httpx.get(base + "/_stripe/v1/prices", params={"lookup_keys[0]": "local-pro"})
        assert api.status_code == 401
        assert api.json()["error"]["type"] == "invalid_request_error"
        events = httpx.get(base + "/_stripe/").text
        assert "checkout.session.completed" in events
    finally:
        started.stop()
