"""Admission and metering against plans and credits: quotas, spend caps, credits, rate limits,
and the 402/429 answers a caller sees."""

from __future__ import annotations

import pytest

from aigw import clock
from aigw.billing import account, plans
from aigw.usage import records as usage_records
from tests.conftest import FakeClock
from tests.helpers import ledger
from tests.helpers.apigw import call
from tests.unit.billing_fixtures import CHAT, HELLO, acme_key, billing_env

__all__ = ["acme_key", "billing_env"]


def _plan(**limits: object) -> None:
    plans.put_plan("custom", plans.PlanSpec.model_validate(limits))
    account.assign_plan("acme", "custom")


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _counters_agree_with_records() -> None:
    ledger.assert_agrees("acme")


def test_no_subscription_402_is_problem_json_and_openai_error(acme_key: str) -> None:
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    body = reply.json()
    assert reply.status == 402
    assert reply.header("Content-Type") == "application/problem+json"
    assert body["type"] == "urn:aigw:problem:no_subscription"
    assert (body["title"], body["status"], body["code"]) == ("No subscription", 402, "no_subscription")
    assert body["error"]["code"] == "no_subscription"
    assert body["error"]["type"] == "billing_error"
    assert "token=" not in body["detail"]  # the link is a bearer token: fix_url and Link only
    assert "plan=pro-monthly" in body["fix_url"]  # CHECKOUT_PLAN
    assert reply.header("Link") == f'<{body["fix_url"]}>; rel="payment"'
    assert _records() == []  # refused before anything was called or recorded


def test_quota_runs_out_with_402_and_the_date_it_returns(acme_key: str) -> None:
    _plan(monthly_tokens=300)
    small = {**HELLO, "max_tokens": 5}
    replies = [call("POST", CHAT, body=small, key=acme_key) for _ in range(40)]
    statuses = [r.status for r in replies]
    assert statuses[0] == 200
    assert statuses[-1] == 402
    assert statuses == sorted(statuses)  # once refused, refused
    first, last_ok = replies[0], replies[statuses.count(200) - 1]
    assert first.header("X-Billing-Warning") is None
    assert (last_ok.header("X-Billing-Warning") or "").startswith("quota_low; ")  # warned before the 402
    body = replies[-1].json()
    assert body["error"]["code"] == "quota_exhausted"
    view = account.summary("acme")
    assert body["access_returns_at"] == view.period_end
    assert view.tokens_used <= 300
    _counters_agree_with_records()


def test_large_max_tokens_is_refused_before_the_quota_is_spent(acme_key: str) -> None:
    _plan(monthly_tokens=1000)
    reply = call("POST", CHAT, body={**HELLO, "max_tokens": 5000}, key=acme_key)
    assert reply.status == 402
    assert "lower max_tokens" in reply.json()["detail"]
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200


def test_spend_cap(acme_key: str) -> None:
    _plan(spend_cap_micro_usd=200)  # mock/echo: 1 + 2 micro-USD per prompt/completion token
    codes = {
        call("POST", CHAT, body=HELLO, key=acme_key).json().get("error", {}).get("code") for _ in range(5)
    }
    assert "spend_cap_reached" in codes
    assert account.summary("acme").spend_used_micro_usd <= 200
    _counters_agree_with_records()


def test_credits_are_drawn_down_by_each_calls_cost_and_never_below_zero(acme_key: str) -> None:
    account.grant_credits("acme", 500)
    costs = []
    while True:
        reply = call("POST", CHAT, body=HELLO, key=acme_key)
        if reply.status != 200:
            break
        costs.append(int(reply.header("X-Billing-Credits-Remaining-Micro-Usd") or -1))
    assert reply.status == 402
    assert reply.json()["error"]["code"] == "credits_exhausted"
    assert "plan=credits-10" in reply.json()["fix_url"]
    view = account.summary("acme")
    spent = sum(r.cost_micro_usd for r in _records() if r.funding == "credits")
    assert view.credits_micro_usd == 500 - spent >= 0
    assert costs == sorted(costs, reverse=True)
    assert costs[-1] == view.credits_micro_usd


def test_failed_calls_release_their_reservation(acme_key: str) -> None:
    _plan(monthly_tokens=10_000)
    reply = call("POST", CHAT, body={**HELLO, "model": "openai/gpt-4o-mini"}, key=acme_key)
    assert reply.status == 502  # no OpenAI key configured
    ledger.settle()
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (0, 0)
    (record,) = _records()
    assert record.status == 502


def test_requests_per_minute_overrun_is_429_not_402(acme_key: str) -> None:
    _plan(requests_per_minute=2)
    first = call("POST", CHAT, body=HELLO, key=acme_key)
    assert first.header("x-ratelimit-remaining-requests") == "1"
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.status == 429
    assert reply.json()["error"]["code"] == "requests_per_minute_exceeded"
    assert 1 <= int(reply.header("Retry-After") or 0) <= 60


def test_tokens_per_minute(acme_key: str) -> None:
    _plan(tokens_per_minute=150)
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert (reply.status, reply.json()["error"]["code"]) == (429, "tokens_per_minute_exceeded")
    too_big = call("POST", CHAT, body={**HELLO, "max_tokens": 1000}, key=acme_key)
    assert too_big.status == 429
    assert "lower max_tokens" in too_big.json()["error"]["message"]


def test_a_new_minute_opens_a_new_window(acme_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _plan(requests_per_minute=1)
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 429
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + 60)
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200


def test_plan_model_allow_list(acme_key: str) -> None:
    _plan(allowed_models=["openai/*"], unlimited=True)
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert (reply.status, reply.json()["error"]["code"]) == (403, "model_not_in_plan")


def test_plan_missing_from_the_gateway_is_refused_clearly(acme_key: str) -> None:
    _plan(unlimited=True)
    plans.delete_plan("custom")
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.status == 402
    assert "'custom' is not configured" in reply.json()["detail"]


def test_calendar_month_rolls_over_without_a_subscription(acme_key: str, fake_clock: FakeClock) -> None:
    _plan(monthly_tokens=300)
    while call("POST", CHAT, body=HELLO, key=acme_key).status == 200:
        pass
    period_end = account.load("acme").period_end
    assert period_end is not None
    fake_clock.set(period_end + 5)
    assert call("POST", CHAT, body=HELLO, key=acme_key).status == 200
    assert account.load("acme").period_start == period_end


def test_quota_thresholds_notify_once(acme_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr("aigw.billing.notifications.emit", lambda kind, team, **d: sent.append((kind, d)))
    _plan(monthly_tokens=250)
    for _ in range(30):
        call("POST", CHAT, body={**HELLO, "max_tokens": 5}, key=acme_key)
    levels = [d["percent"] for kind, d in sent if kind == "Quota Threshold Reached"]
    assert levels[0] == 80
    assert levels.count(80) == 1
    assert levels.count(100) <= 1


def test_billing_status_shows_the_team_its_terms(acme_key: str) -> None:
    _plan(monthly_tokens=1000)
    call("POST", CHAT, body=HELLO, key=acme_key)
    ledger.settle()  # the container hands its lease back (the runner does when a worker idles)
    body = call("GET", "/billing/status", key=acme_key).json()
    assert (body["allowed"], body["plan_id"], body["monthly_tokens"]) == (True, "custom", 1000)
    assert body["tokens_used"] > 0
    assert body["links"]["portal"] is None  # no Stripe customer yet: checkout is the way in
    assert "/billing/checkout?token=" in body["links"]["checkout"]


def test_credits_pay_for_calls_beyond_an_exhausted_quota(acme_key: str) -> None:
    _plan(monthly_tokens=300)
    while call("POST", CHAT, body=HELLO, key=acme_key).status == 200:
        pass
    account.grant_credits("acme", 400)
    reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.status == 200
    assert int(reply.header("X-Billing-Credits-Remaining-Micro-Usd") or 0) < 400
    assert _records()[-1].funding == "credits"
    while reply.status == 200:
        reply = call("POST", CHAT, body=HELLO, key=acme_key)
    assert reply.json()["error"]["code"] == "quota_exhausted"  # the plan's refusal, once credits are short
    view = account.summary("acme")
    assert view.tokens_used <= 300
    assert view.credits_micro_usd == 400 - sum(r.cost_micro_usd for r in _records() if r.funding == "credits")
