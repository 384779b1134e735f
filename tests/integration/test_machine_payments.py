"""Machine payments through the real handlers on DynamoDB Local and the fake Stripe: what the
e2e tests cannot set up cheaply (time moving past a challenge's expiry, Stripe unreachable,
claims racing in threads), and the team and admin controls."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mpp import Challenge
from mpp.methods.stripe.client import OnChallengeParameters, StripeMethod

from aigw import clock, keys, teams
from aigw.billing import machine_payments, plans
from aigw.errors import GatewayError
from tests.conftest import reset_core
from tests.helpers.apigw import Reply, build_event, call
from tests.helpers.stripe import FakeStripe

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 50}
PACK = "credits-5"
_tokens = itertools.count()


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    monkeypatch.delenv("DEFAULT_PLAN", raising=False)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_gateway")
    monkeypatch.setenv("STRIPE_API_BASE", fake.url)
    monkeypatch.setenv("STRIPE_PROFILE_ID", "profile_integration")
    monkeypatch.setenv("MPP_CHALLENGE_SECRET", "integration-challenge-secret")
    monkeypatch.setenv("BILLING_LINK_SECRET", "integration-link-secret")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://gw.example/dev")
    reset_core()
    yield fake
    fake.stop()


@pytest.fixture
def admin(stripe: FakeStripe) -> str:
    teams.create_team("ops")
    return keys.create_key("ops", role="admin").secret


@pytest.fixture
def agent(admin: str) -> str:
    """A key of team acme, opted in (self-serve: no plan, no credits) with a 5 USD pack."""
    plans.put_plan(PACK, plans.PlanSpec(kind="credits", credits_micro_usd=5_000_000))
    teams.create_team("acme")
    body = {"enabled": True, "self_serve": True, "pack_id": PACK}
    assert call("PUT", "/admin/teams/acme/machine-payments", key=admin, body=body).status == 200
    return keys.create_key("acme", name="agent").secret


def _credential(reply: Reply, spt: str | None = None) -> str:
    challenge = Challenge.from_www_authenticate(reply.header("WWW-Authenticate") or "")

    async def token(_: OnChallengeParameters) -> str:
        return spt or f"spt_it{next(_tokens)}"

    method = StripeMethod(create_token=token, payment_method="pm_card_visa")
    return asyncio.run(method.create_credential(challenge)).to_authorization()


def _pay(key: str, credential: str) -> Reply:
    return call("POST", CHAT, key=key, body=HELLO, headers={"Payment-Authorization": credential})


def _credits(admin: str) -> int:
    return int(call("GET", "/admin/teams/acme/billing", key=admin).json()["credits_micro_usd"])


def test_an_expired_challenge_is_payment_expired_with_a_fresh_one(
    agent: str, admin: str, stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential = _credential(call("POST", CHAT, key=agent, body=HELLO))
    later = clock.now() + 301
    monkeypatch.setattr(clock, "now", lambda: later)
    reply = _pay(agent, credential)
    assert reply.status == 402
    assert reply.json()["type"] == "https://paymentauth.org/problems/payment-expired"
    assert reply.json()["error"]["code"] == "payment_expired"
    assert reply.header("WWW-Authenticate")
    assert stripe.payment_intents == {}
    assert _credits(admin) == 0


def test_when_stripe_cannot_answer_the_same_credential_later_pays_once(
    agent: str, admin: str, stripe: FakeStripe
) -> None:
    credential = _credential(call("POST", CHAT, key=agent, body=HELLO), spt="spt_flaky_unreachable")
    first = _pay(agent, credential)
    assert first.status == 502
    assert first.json()["error"]["code"] == "payment_outcome_unknown"
    assert first.header("WWW-Authenticate") is None  # never invite a second payment
    assert _credits(admin) == 0
    again = _pay(agent, credential)
    assert again.status == 200, again.body
    assert [pi["status"] for pi in stripe.payment_intents.values()] == ["succeeded"]
    assert _credits(admin) > 0
    assert _pay(agent, credential).status == 403


def test_claims_racing_in_threads_settle_once(agent: str, admin: str, stripe: FakeStripe) -> None:
    """Eight redemptions of one credential at the same moment (a handler process serves one
    invocation at a time, so the race is run on the core, as concurrent Lambdas would)."""
    credential = _credential(call("POST", CHAT, key=agent, body=HELLO))
    api_key = keys.authenticate(agent)

    def redeem(_: int) -> int:
        event, _route = build_event(
            "POST", CHAT, key=agent, body=HELLO, headers={"Payment-Authorization": credential}
        )
        try:
            machine_payments.redeem(event, api_key)
        except GatewayError as exc:
            return exc.status
        return 200

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(redeem, range(8)))
    assert statuses == [200] + [403] * 7
    assert len(stripe.succeeded()) == 1
    payments = call("GET", "/admin/teams/acme/machine-payments/payments", key=admin).json()["data"]
    assert len(payments) == 1


def test_the_credit_pack_must_be_a_pack_stripe_can_charge(admin: str, stripe: FakeStripe) -> None:
    teams.create_team("acme")
    plans.put_plan("pennies", plans.PlanSpec(kind="credits", credits_micro_usd=400_000))
    plans.put_plan("monthly", plans.PlanSpec(monthly_tokens=1000))
    small = call("PUT", "/admin/teams/acme/machine-payments", key=admin, body={"pack_id": "pennies"})
    assert (small.status, small.json()["param"]) == (400, "pack_id")
    assert "minimum charge is 50 cents" in small.json()["detail"]
    not_pack = call("PUT", "/admin/teams/acme/machine-payments", key=admin, body={"pack_id": "monthly"})
    assert (not_pack.status, not_pack.json()["param"]) == (400, "pack_id")
    missing = call("PUT", "/admin/teams/acme/machine-payments", key=admin, body={"pack_id": "nope"})
    assert missing.status == 404
    bad = call("PUT", "/admin/teams/acme/machine-payments", key=admin, body={"team_daily_limit": -1})
    assert (bad.status, bad.json()["param"]) == (400, "team_daily_limit")


def test_a_team_key_can_narrow_but_never_widen(agent: str, admin: str) -> None:
    widen = call("PUT", "/me/machine-payments", key=agent, body={"key_daily_limit": 50})
    assert (widen.status, widen.json()["code"]) == (403, "admin_required")
    lower = call("PUT", "/me/machine-payments", key=agent, body={"key_daily_limit": 1})
    assert lower.status == 200
    assert lower.json()["key_daily_limit"] == 1
    off = call("PUT", "/me/machine-payments", key=agent, body={"enabled": False})
    assert off.status == 200
    assert off.json()["enabled"] is False
    back_on = call("PUT", "/me/machine-payments", key=agent, body={"enabled": True})
    assert back_on.status == 403
    refused = call("POST", CHAT, key=agent, body=HELLO)
    assert refused.status == 402
    assert refused.header("WWW-Authenticate") is None


def test_payments_show_in_the_team_view_the_report_and_notifications(
    agent: str, admin: str, stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        machine_payments.notifications, "emit", lambda kind, team, **detail: sent.append((kind, detail))
    )
    paid = _pay(agent, _credential(call("POST", CHAT, key=agent, body=HELLO)))
    assert paid.status == 200
    pi = next(iter(stripe.payment_intents))
    mine = call("GET", "/me/machine-payments", key=agent).json()
    assert mine["enabled"] is True
    assert mine["pack"]["amount"] == "500"
    assert [p["payment_intent"] for p in mine["payments"]] == [pi]
    assert mine["payments"][0]["key_name"] == "agent"
    assert mine["today"]["team_top_ups"] == 1
    report = call("GET", "/reports/usage", key=agent).json()
    assert report["machine_payments"]["count"] == 1
    assert report["machine_payments"]["credits_micro_usd"] == 5_000_000
    kinds = [kind for kind, _ in sent]
    assert "Credits Purchased" in kinds
    assert "Access Restored" in kinds
    detail = dict(sent)["Credits Purchased"]
    assert (detail["micro_usd"], detail["payment_intent"], detail["machine_payment"]) == (5_000_000, pi, True)


def test_a_pack_too_small_for_the_call_is_not_offered(agent: str, admin: str, stripe: FakeStripe) -> None:
    plans.put_plan("half", plans.PlanSpec(kind="credits", credits_micro_usd=500_000))
    call("PUT", "/admin/teams/acme/machine-payments", key=admin, body={"pack_id": "half"})
    call("POST", "/admin/teams/acme/credits", key=admin, body={"micro_usd": 1})
    # A pricey model: the worst case of 4,096 output tokens at 1,000 USD per million is
    # about 4.10 USD, more than the 0.50 USD pack buys.
    pricey = {
        "id": "mock/pricey",
        "provider": "mock",
        "upstream": "echo",
        "context_window": 128_000,
        "max_output_tokens": 16_384,
        "input_per_mtok": "1",
        "cached_input_per_mtok": "1",
        "output_per_mtok": "1000",
    }
    assert call("PUT", "/admin/models", key=admin, body=pricey).status == 200
    reply = call("POST", CHAT, key=agent, body={**HELLO, "model": "mock/pricey", "max_tokens": 4096})
    assert reply.status == 402
    assert reply.json()["code"] == "credits_exhausted"
    assert reply.header("WWW-Authenticate") is None
    assert reply.json()["machine_payment"]["code"] == "pack_too_small"
    small = call("POST", CHAT, key=agent, body=HELLO)
    assert small.header("WWW-Authenticate") is not None
