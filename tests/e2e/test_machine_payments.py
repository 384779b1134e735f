"""Machine payments end to end: an agent (pympp's client, the protocol's reference SDK, with a
fake ``create_token``) meets a 402 from the local runner, pays it with a Stripe shared payment
token against the fake Stripe, and gets its answer with a receipt, all in one client call."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from mpp import Challenge, Receipt
from mpp.client import Mpp
from mpp.methods.stripe import client as stripe_mpp
from mpp.methods.stripe.client import OnChallengeParameters, StripeMethod

from tests.e2e.conftest import Started, start_runner, usage_items_today
from tests.helpers import aio
from tests.helpers.stripe import FakeStripe

pytestmark = pytest.mark.e2e

PACK = "mpp-credits-10"
PACK_MICRO_USD = 10_000_000
PROFILE = "profile_test_aigw"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello agent"}], "max_tokens": 50}
_teams = itertools.count()
_tokens = itertools.count()


@dataclass
class Gateway:
    url: str
    admin: str
    stripe: FakeStripe
    started: Started

    def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        reply = httpx.request(
            method, self.url + path, json=body, headers={"Authorization": f"Bearer {self.admin}"}, timeout=30
        )
        assert reply.status_code < 300, reply.text
        return reply.json()

    def credits(self, team: str) -> int:
        """The team's credits once the runner's workers handed their budget leases back (a worker
        does after about a second without calls; until then a slice is reserved, not spent)."""
        deadline = time.monotonic() + 20
        while True:
            view = self.admin_call("GET", f"/admin/teams/{team}/billing")
            if not view["credits_reserved_micro_usd"] or time.monotonic() > deadline:
                return int(view["credits_micro_usd"])
            time.sleep(0.1)

    def team(self, **settings: Any) -> tuple[str, str]:
        """A team that opted in to machine payments, with no plan and no credits, and a key."""
        team = f"agents-{next(_teams)}"
        self.admin_call("POST", "/admin/teams", {"team_id": team})
        key = self.admin_call("POST", f"/admin/teams/{team}/keys", {"name": "agent"})["secret"]
        body = {"enabled": True, "self_serve": True, "pack_id": PACK, **settings}
        self.admin_call("PUT", f"/admin/teams/{team}/machine-payments", body)
        return team, key

    def chat(self, key: str, body: Any = None, **headers: str) -> httpx.Response:
        return httpx.post(
            self.url + "/v1/chat/completions",
            json=body or HELLO,
            headers={"Authorization": f"Bearer {key}", **headers},
            timeout=60,
        )

    def succeeded(self) -> list[dict[str, Any]]:
        return self.stripe.succeeded()

    def started_usage(self, team: str, at_least: int = 1) -> list[dict[str, Any]]:
        """Today's usage records of ``team`` (settled just after each answer: poll a little)."""
        from aigw.table import deserialize

        deadline = time.monotonic() + 20
        while True:
            items = usage_items_today(self.started.dynamodb_endpoint, team)
            if len(items) >= at_least or time.monotonic() > deadline:
                return sorted((deserialize(i) for i in items), key=lambda r: int(r["created_at_ms"]))
            time.sleep(0.1)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    stripe = FakeStripe().start()
    from aigw_local.dynamodb_local import free_port

    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "STRIPE_API_KEY": "sk_test_machine_payments",
        "STRIPE_API_BASE": stripe.url,
        "STRIPE_PROFILE_ID": PROFILE,
        # No plan for teams without one: they are refused (no_subscription) until they pay.
        "DEFAULT_PLAN": "no-default-plan",
    }
    started = start_runner(env, "--workers", "3")
    gw = Gateway(f"http://127.0.0.1:{port}", started.keys["admin"], stripe, started)
    gw.admin_call("PUT", f"/admin/plans/{PACK}", {"kind": "credits", "credits_micro_usd": PACK_MICRO_USD})
    yield gw
    started.stop()
    stripe.stop()


@dataclass
class Agent:
    """What an agent's backend does in ``create_token``: mint a shared payment token (here a
    fake one; its suffix tells the fake Stripe the outcome) for what the challenge asks."""

    outcome: str = ""
    asked: list[OnChallengeParameters] = field(default_factory=list)

    async def create_token(self, params: OnChallengeParameters) -> str:
        self.asked.append(params)
        return f"spt_agent{next(_tokens)}{self.outcome}"

    def method(self) -> Any:
        return stripe_mpp.charge(create_token=self.create_token, payment_method="pm_card_visa")


def _challenge(reply: httpx.Response) -> Challenge:
    return Challenge.from_www_authenticate(reply.headers["www-authenticate"])


def _credential(challenge: Challenge, spt: str | None = None) -> str:
    async def token(_: OnChallengeParameters) -> str:
        return spt or f"spt_manual{next(_tokens)}"

    method = StripeMethod(create_token=token, payment_method="pm_card_visa")
    return aio.run(method.create_credential(challenge)).to_authorization()


def test_the_402_carries_a_challenge_the_client_parses(gateway: Gateway) -> None:
    _team, key = gateway.team()
    reply = gateway.chat(key)
    assert reply.status_code == 402
    # The human-facing 402 is untouched: its code, message, fix_url and Link are all there.
    body = reply.json()
    assert body["code"] == "no_subscription"
    assert body["error"]["code"] == "no_subscription"
    assert body["fix_url"].startswith(gateway.url + "/billing/checkout")
    assert reply.headers["link"].endswith('>; rel="payment"')
    assert reply.headers["cache-control"] == "no-store"
    challenge = _challenge(reply)
    assert (challenge.method, challenge.intent, challenge.realm) == (
        "stripe",
        "charge",
        "127.0.0.1:" + gateway.url.rsplit(":", 1)[1],
    )
    assert challenge.credential_header == "Payment-Authorization"
    assert challenge.request["amount"] == str(PACK_MICRO_USD // 10_000)
    assert challenge.request["currency"] == "usd"
    assert challenge.request["methodDetails"] == {"networkId": PROFILE, "paymentMethodTypes": ["card"]}
    assert challenge.digest is not None
    assert challenge.digest.startswith("sha-256=:")
    assert challenge.expires is not None
    assert challenge.expires.endswith("Z")
    assert body["machine_payment"]["challenge_id"] == challenge.id == body["challengeId"]


def test_an_agent_pays_and_gets_its_answer_with_a_receipt_in_one_call(gateway: Gateway) -> None:
    team, key = gateway.team()
    agent = Agent()
    before = len(gateway.succeeded())

    async def run() -> Any:
        async with Mpp(methods=[agent.method()]) as mpp:
            client = openai.AsyncOpenAI(api_key=key, base_url=gateway.url + "/v1", http_client=mpp.client())
            return await client.chat.completions.with_raw_response.create(**HELLO)  # type: ignore[call-overload]

    raw = aio.run(run())
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == "Echo: Hello agent"
    receipt = Receipt.from_payment_receipt(raw.headers["payment-receipt"])
    assert (receipt.status, receipt.method) == ("success", "stripe")
    assert raw.headers["cache-control"] == "private"
    assert len(agent.asked) == 1
    assert agent.asked[0].amount == "1000"
    paid = gateway.succeeded()[before:]
    assert [pi["id"] for pi in paid] == [receipt.reference]
    assert paid[0]["amount"] == 1000
    assert paid[0]["metadata"]["team_id"] == team
    # Credits up by exactly the pack: what is left plus what the paid call cost.
    audit = gateway.admin_call("GET", f"/admin/teams/{team}/machine-payments/payments")["data"]
    assert [(p["payment_intent"], p["credits_micro_usd"], p["amount_cents"]) for p in audit] == [
        (receipt.reference, PACK_MICRO_USD, 1000)
    ]
    records = gateway.started_usage(team)
    assert [r["machine_payment"] for r in records] == [receipt.reference]
    assert audit[0]["request_id"] == records[0]["request_id"]
    assert gateway.credits(team) + sum(int(r["cost_micro_usd"]) for r in records) == PACK_MICRO_USD


def test_every_bad_credential_is_refused_and_nothing_is_charged(gateway: Gateway) -> None:
    team, key = gateway.team()
    other_team, other_key = gateway.team()
    before = len(gateway.succeeded())
    challenge = _challenge(gateway.chat(key))

    def refused(credential: str, body: Any = None, *, using: str = key) -> httpx.Response:
        reply = gateway.chat(using, body, **{"Payment-Authorization": credential})
        assert reply.status_code in (402, 403), reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert "payment-receipt" not in reply.headers
        return reply

    def tampered(**change: Any) -> str:
        value = _credential(challenge)
        data = json.loads(base64.urlsafe_b64decode(value[8:] + "=="))
        data["challenge"].update(change)
        return "Payment " + base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    cheaper = {**challenge.request, "amount": "1"}
    cheap = base64.urlsafe_b64encode(json.dumps(cheaper).encode()).decode().rstrip("=")
    cases = {
        "wrong amount": refused(tampered(request=cheap)),
        "tampered expiry": refused(tampered(expires="2099-01-01T00:00:00Z")),
        "another team's challenge": refused(_credential(challenge), using=other_key),
        "digest mismatch": refused(_credential(challenge), {**HELLO, "max_tokens": 51}),
        "malformed": refused("Payment bm90IGpzb24"),
        "not an spt": refused(_credential(challenge, spt="tok_visa")),
    }
    for name, reply in cases.items():
        problem = reply.json()
        assert reply.status_code == 402, name
        assert problem["type"].startswith("https://paymentauth.org/problems/"), name
        # A failed credential gets a fresh challenge.
        fresh = _challenge(reply)
        assert fresh.id != challenge.id, name
    assert cases["wrong amount"].json()["type"].endswith("/invalid-challenge")
    assert cases["another team's challenge"].json()["detail"] == "This challenge was issued to another team."
    assert cases["malformed"].json()["type"].endswith("/malformed-credential")
    assert cases["not an spt"].json()["type"].endswith("/verification-failed")

    declined = refused(_credential(_challenge(gateway.chat(key)), spt=f"spt_x{next(_tokens)}_declined"))
    assert declined.json()["type"].endswith("/verification-failed")
    action = refused(_credential(_challenge(gateway.chat(key)), spt=f"spt_x{next(_tokens)}_requires_action"))
    assert action.json()["type"].endswith("/payment-action-required")
    assert action.json()["error"]["code"] == "payment_action_required"
    assert gateway.stripe.payment_intents[max(gateway.stripe.payment_intents)]["status"] == "canceled"

    # A good credential, then its replay: the second gets no second charge.
    good = _credential(challenge)
    assert gateway.chat(key, **{"Payment-Authorization": good}).status_code == 200
    replay = refused(good)
    assert replay.status_code == 403
    assert "already paid" in replay.json()["detail"]
    assert "www-authenticate" not in replay.headers

    assert len(gateway.succeeded()) == before + 1
    assert gateway.credits(other_team) == 0
    payments = gateway.admin_call("GET", f"/admin/teams/{team}/machine-payments/payments")["data"]
    assert len(payments) == 1


def test_twenty_concurrent_replays_make_one_payment_and_one_credit(gateway: Gateway) -> None:
    team, key = gateway.team()
    credential = _credential(_challenge(gateway.chat(key)))
    before = len(gateway.succeeded())
    with ThreadPoolExecutor(20) as pool:
        replies = list(
            pool.map(lambda _: gateway.chat(key, **{"Payment-Authorization": credential}), range(20))
        )
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] + [403] * 19, [r.text for r in replies if r.status_code not in (200, 403)]
    assert len(gateway.succeeded()) == before + 1
    assert len(gateway.admin_call("GET", f"/admin/teams/{team}/machine-payments/payments")["data"]) == 1
    records = gateway.started_usage(team)
    assert gateway.credits(team) + sum(int(r["cost_micro_usd"]) for r in records) == PACK_MICRO_USD


def test_the_daily_ceiling_holds(gateway: Gateway) -> None:
    team, key = gateway.team(team_daily_limit=5, key_daily_limit=1)
    second_key = gateway.admin_call("POST", f"/admin/teams/{team}/keys", {"name": "agent-2"})["secret"]
    first = _challenge(gateway.chat(key))
    spare = _challenge(gateway.chat(key))
    assert gateway.chat(key, **{"Payment-Authorization": _credential(first)}).status_code == 200
    before = len(gateway.succeeded())
    # The key's one top-up of the day is used: its second credential is refused, nothing charged.
    over = gateway.chat(key, **{"Payment-Authorization": _credential(spare)})
    assert over.status_code == 402
    assert over.json()["code"] == "key_daily_limit_reached"
    assert over.json()["machine_payment"]["code"] == "key_daily_limit_reached"
    assert "www-authenticate" not in over.headers
    assert len(gateway.succeeded()) == before

    # A team at its ceiling gets the 402 with no challenge and a code saying why.
    _capped, capped_key = gateway.team(team_daily_limit=0)
    refused = gateway.chat(capped_key)
    assert refused.status_code == 402
    assert refused.json()["code"] == "no_subscription"
    assert refused.json()["machine_payment"]["code"] == "team_daily_limit_reached"
    assert refused.json()["machine_payment"]["available"] is False
    assert "www-authenticate" not in refused.headers
    assert second_key != key


def test_teams_that_did_not_opt_in_get_no_challenge(gateway: Gateway) -> None:
    _team, key = gateway.team(enabled=False)
    reply = gateway.chat(key)
    assert reply.status_code == 402
    assert "www-authenticate" not in reply.headers
    assert "machine_payment" not in reply.json()


def test_streamed_and_anthropic_format_calls_are_paid_the_same_way(gateway: Gateway) -> None:
    team, key = gateway.team()
    agent = Agent()

    async def run() -> tuple[httpx.Response, httpx.Response]:
        async with Mpp(methods=[agent.method()]) as mpp:
            streamed = await mpp.fetch(
                gateway.url + "/v1/chat/completions",
                method="POST",
                json={**HELLO, "stream": True},
                headers={"Authorization": f"Bearer {key}"},
            )
            # The team has credits now: the next call needs no top-up.
            messages = await mpp.fetch(
                gateway.url + "/v1/messages",
                method="POST",
                json={
                    "model": "mock/echo",
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": "Hi"}],
                },
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            )
            return streamed, messages

    streamed, messages = aio.run(run())
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "data: [DONE]" in streamed.text
    receipt = Receipt.from_payment_receipt(streamed.headers["payment-receipt"])
    assert receipt.reference in {pi["id"] for pi in gateway.succeeded()}
    # The second call found the credits the first one bought: no second payment.
    assert messages.status_code == 200
    assert "payment-receipt" not in messages.headers
    assert len(agent.asked) == 1
    assert len(gateway.admin_call("GET", f"/admin/teams/{team}/machine-payments/payments")["data"]) == 1


def test_an_anthropic_format_402_carries_the_challenge_too(gateway: Gateway) -> None:
    _team, key = gateway.team()
    reply = httpx.post(
        gateway.url + "/v1/messages",
        json={"model": "mock/echo", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert reply.status_code == 402
    assert reply.json()["type"] == "error"  # Anthropic's shape, so Claude SDKs raise as before
    assert _challenge(reply).request["amount"] == "1000"


def test_quota_and_credits_refusals_carry_a_challenge_and_paying_lets_the_call_through(
    gateway: Gateway,
) -> None:
    agent = Agent()

    async def pay(key: str) -> httpx.Response:
        async with Mpp(methods=[agent.method()]) as mpp:
            return await mpp.fetch(
                gateway.url + "/v1/chat/completions",
                method="POST",
                json=HELLO,
                headers={"Authorization": f"Bearer {key}"},
            )

    # A plan whose monthly tokens are spent: quota_exhausted, then the bought credits pay.
    quota_team, quota_key = gateway.team(self_serve=False)
    gateway.admin_call("PUT", f"/admin/plans/{quota_team}-tiny", {"monthly_tokens": 10})
    gateway.admin_call("PUT", f"/admin/teams/{quota_team}/plan", {"plan_id": f"{quota_team}-tiny"})
    refused = gateway.chat(quota_key)
    assert refused.json()["code"] == "quota_exhausted"
    assert _challenge(refused).request["amount"] == "1000"
    paid = aio.run(pay(quota_key))
    assert paid.status_code == 200
    assert paid.json()["choices"][0]["message"]["content"] == "Echo: Hello agent"
    assert [r["funding"] for r in gateway.started_usage(quota_team)] == ["credits"]

    # Prepaid credits down to one micro-USD: credits_exhausted.
    credits_team, credits_key = gateway.team(self_serve=False)
    gateway.admin_call("POST", f"/admin/teams/{credits_team}/credits", {"micro_usd": 1})
    refused = gateway.chat(credits_key)
    assert refused.json()["code"] == "credits_exhausted"
    assert "www-authenticate" in refused.headers
    assert aio.run(pay(credits_key)).status_code == 200
    assert (
        gateway.credits(credits_team)
        + sum(int(r["cost_micro_usd"]) for r in gateway.started_usage(credits_team))
        == PACK_MICRO_USD + 1
    )

    # Without self-serve, a team with no subscription gets the human 402 only.
    _plain_team, plain_key = gateway.team(self_serve=False)
    refused = gateway.chat(plain_key)
    assert refused.json()["code"] == "no_subscription"
    assert "www-authenticate" not in refused.headers


def test_the_aigw_cli_opts_a_team_in_and_lists_its_machine_payments(gateway: Gateway) -> None:
    def aigw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aigw.cli", "--url", gateway.url, "--admin-key", gateway.admin, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    team = f"cli-agents-{next(_teams)}"
    gateway.admin_call("POST", "/admin/teams", {"team_id": team})
    key = gateway.admin_call("POST", f"/admin/teams/{team}/keys", {"name": "cli-agent"})["secret"]
    assert "www-authenticate" not in gateway.chat(key).headers  # off until an admin opts in
    opted = aigw(
        "machine-payments",
        "set",
        "--team",
        team,
        "--enable",
        "--self-serve",
        "--pack",
        PACK,
        "--key-daily",
        "2",
    )
    assert opted.returncode == 0, opted.stderr
    assert "machine payments on" in opted.stdout
    assert "2 a day per key" in opted.stdout
    missing = aigw("machine-payments", "set", "--team", team, "--pack", "no-such-pack")
    assert missing.returncode == 1
    assert "404" in missing.stderr
    credential = _credential(_challenge(gateway.chat(key)))
    assert gateway.chat(key, **{"Payment-Authorization": credential}).status_code == 200
    listed = aigw("machine-payments", "list", "--team", team, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["key_name"], r["amount_cents"], r["credits_micro_usd"]) for r in rows] == [
        ("cli-agent", 1000, PACK_MICRO_USD)
    ]
    assert rows[0]["payment_intent"].startswith("pi_")
    table = aigw("machine-payments", "list", "--team", team)
    assert rows[0]["payment_intent"] in table.stdout
    shown = json.loads(aigw("machine-payments", "show", "--team", team, "--json").stdout)
    assert (shown["enabled"], shown["today"]["team_top_ups"]) == (True, 1)
