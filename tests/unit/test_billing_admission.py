"""Admission at the edge of a budget (issue 11, items 4 and 12) and per-key budgets (issue 12):
a call the budget can only partly pay for is admitted with a capped output limit instead of a
402; a 402 names the funding that ran out; streamed answers carry the billing headers; a key's
own spend cap is enforced by the same admission with its own 402 code."""

from __future__ import annotations

import json

import pytest

from aigw import catalog, keys
from aigw.billing import account, plans
from aigw.keys import KeyBudget
from tests.conftest import FakeClock
from tests.helpers import ledger
from tests.helpers.apigw import call
from tests.unit.billing_fixtures import CHAT, acme_key, billing_env

__all__ = ["acme_key", "billing_env"]

# No max_tokens: the plan's default output limit (4,096 tokens) is what a call may use.
NO_LIMIT = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}]}


def _plan(**limits: object) -> None:
    plans.put_plan("custom", plans.PlanSpec.model_validate(limits))
    account.assign_plan("acme", "custom")


# ---- item 4: capped admission instead of false 402s ------------------------------------------------


def test_a_plan_with_42_of_60_tokens_left_still_answers_with_a_capped_output(acme_key: str) -> None:
    _plan(monthly_tokens=60)
    reply = call("POST", CHAT, body=NO_LIMIT, key=acme_key)
    assert reply.status == 200, reply.body
    capped = int(reply.header("X-Billing-Output-Capped") or 0)
    assert 16 <= capped < 60
    assert reply.json()["usage"]["completion_tokens"] <= capped
    (record,) = ledger.records()
    assert (record.output_limit, "output_capped" in record.flags) == (capped, True)


def test_a_capped_answer_that_reaches_its_cap_ends_with_finish_reason_length(acme_key: str) -> None:
    _plan(monthly_tokens=120)  # a prompt of ~80 tokens leaves ~40 for an echo of ~50
    long = {**NO_LIMIT, "messages": [{"role": "user", "content": "word " * 36}]}
    reply = call("POST", CHAT, body=long, key=acme_key)
    assert reply.status == 200, reply.body
    assert reply.header("X-Billing-Output-Capped") is not None
    assert reply.json()["choices"][0]["finish_reason"] == "length"


def test_a_fast_loop_with_a_little_credit_left_is_not_refused_while_credit_remains(acme_key: str) -> None:
    # 5,000 micro-USD cannot cover mock/echo's default worst case (4,096 output tokens at 2
    # micro-USD each): before the fix every call was a 402 although the team had money left.
    account.grant_credits("acme", 5_000)
    replies = [call("POST", CHAT, body=NO_LIMIT, key=acme_key) for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5
    assert all(r.header("X-Billing-Output-Capped") for r in replies)
    left = [int(r.header("X-Billing-Credits-Remaining-Micro-Usd") or -1) for r in replies]
    assert left == sorted(left, reverse=True)
    assert 0 < left[-1] < 5_000


def test_the_402_names_the_credits_when_credits_fund_the_team(acme_key: str) -> None:
    account.grant_credits("acme", 40)  # not even the prompt and a short answer
    reply = call("POST", CHAT, body=NO_LIMIT, key=acme_key)
    assert reply.status == 402
    body = reply.json()
    assert body["code"] == "credits_exhausted"
    assert "prepaid credits" in body["detail"]
    assert "40 micro-USD" in body["detail"]
    assert "token" not in body["detail"].split("Fix it here")[0].replace("tokens", "")


def test_a_free_model_does_not_pass_an_exhausted_plan_on_credits(acme_key: str) -> None:
    """Credits pay what goes beyond a plan's quota, by price: a model that costs nothing cannot
    be paid for, so it stops at the quota like any other (it used to run on forever as 0-cost
    'credits' calls once the quota was spent)."""
    free = {
        "id": "mock/free",
        "provider": "mock",
        "upstream": "echo",
        "context_window": 8_000,
        "max_output_tokens": 64,
        "input_per_mtok": "0",
        "cached_input_per_mtok": "0",
        "output_per_mtok": "0",
    }
    catalog.put_model(catalog.ModelEntry.model_validate(free))
    _plan(monthly_tokens=200)
    account.grant_credits("acme", 1_000_000)
    body = {**NO_LIMIT, "model": "mock/free", "max_tokens": 32}
    statuses = []
    while len(statuses) < 40 and 402 not in statuses:  # about 14 tokens a call: 15 fit
        statuses.append(call("POST", CHAT, body=body, key=acme_key).status)
    assert statuses.count(200) >= 10
    assert statuses[-1] == 402
    ledger.settle()
    assert account.summary("acme").tokens_used <= 200
    assert all(r.funding == "plan" for r in ledger.records())


def test_the_402_of_an_exhausted_plan_says_credits_cannot_pay_either(acme_key: str) -> None:
    _plan(monthly_tokens=20)
    account.grant_credits("acme", 40)
    reply = call("POST", CHAT, body=NO_LIMIT, key=acme_key)
    assert reply.status == 402
    body = reply.json()
    assert body["code"] == "quota_exhausted"
    assert "of the plan's 20 monthly tokens are left" in body["detail"]
    assert "prepaid credits (40 micro-USD) cannot pay for it either" in body["detail"]


def test_the_portal_and_the_402_agree_on_what_is_left(acme_key: str) -> None:
    _plan(monthly_tokens=200)
    while call("POST", CHAT, body={**NO_LIMIT, "max_tokens": 30}, key=acme_key).status == 200:
        pass
    refusal = call("POST", CHAT, body={**NO_LIMIT, "max_tokens": 30}, key=acme_key).json()
    ledger.settle()
    status = call("GET", "/billing/status", key=acme_key).json()
    assert f"{status['tokens_remaining']} of the plan's 200 monthly tokens are left" in refusal["detail"]


# ---- item 12: billing headers on streams ---------------------------------------------------------------


def test_streamed_answers_carry_the_billing_and_rate_limit_headers(acme_key: str) -> None:
    _plan(monthly_tokens=100_000, requests_per_minute=100, tokens_per_minute=100_000)
    reply = call("POST", CHAT, body={**NO_LIMIT, "stream": True, "max_tokens": 20}, key=acme_key)
    assert reply.status == 200
    assert (reply.header("Content-Type") or "").startswith("text/event-stream")
    assert reply.header("X-Billing-Quota-Tokens-Limit") == "100000"
    assert 0 < int(reply.header("X-Billing-Quota-Tokens-Remaining") or 0) < 100_000
    assert reply.header("X-Billing-Period-End") is not None
    assert reply.header("x-ratelimit-limit-requests") == "100"
    assert int(reply.header("x-ratelimit-remaining-requests") or 0) == 99
    assert reply.header("x-ratelimit-remaining-tokens") is not None


def test_streamed_answers_carry_the_quota_warning_before_the_first_byte(acme_key: str) -> None:
    _plan(monthly_tokens=80)  # this call's worst case leaves under 20 % of it
    reply = call("POST", CHAT, body={**NO_LIMIT, "stream": True, "max_tokens": 50}, key=acme_key)
    assert reply.status == 200
    assert (reply.header("X-Billing-Warning") or "").startswith("quota_low; ")


# ---- per-key budgets ------------------------------------------------------------------------------------


@pytest.fixture
def admin() -> str:
    from aigw import teams

    teams.create_team("ops")
    return keys.create_key("ops", role="admin").secret


def _key_id(secret: str) -> str:
    return keys.authenticate(secret).key_id


def test_a_key_with_its_own_daily_cap_is_refused_with_its_own_code(acme_key: str, admin: str) -> None:
    account.grant_credits("acme", 10_000_000)  # the team can pay; the key may not
    ci = keys.create_key("acme", name="ci").secret
    reply = call(
        "PUT",
        f"/admin/teams/acme/keys/{_key_id(ci)}/budget",
        body={"limit_micro_usd": 300, "period": "day"},
        key=admin,
    )
    assert reply.status == 200, reply.body
    assert reply.json()["budget"]["limit_micro_usd"] == 300
    keys.clear_cache()
    statuses = []
    for _ in range(20):
        reply = call("POST", CHAT, body={**NO_LIMIT, "max_tokens": 20}, key=ci)
        statuses.append(reply.status)
        if reply.status != 200:
            break
    assert statuses[0] == 200
    assert statuses[-1] == 402
    body = reply.json()
    assert body["code"] == "key_budget_exhausted"
    assert "resets at" in body["detail"]
    assert body["access_returns_at"].endswith("T00:00:00Z")
    # The team's other keys are not limited by it.
    assert call("POST", CHAT, body={**NO_LIMIT, "max_tokens": 20}, key=acme_key).status == 200
    ledger.settle()
    view = call("GET", "/admin/teams/acme/keys", key=admin).json()["data"]
    (budgeted,) = [k for k in view if k["budget"]]
    spent = sum(r.cost_micro_usd for r in ledger.records() if r.key_id == _key_id(ci))
    assert budgeted["budget"]["used_micro_usd"] == spent <= 300
    ledger.assert_agrees("acme", keys=(keys.authenticate(ci),))


def test_a_key_budget_resets_with_its_period(acme_key: str, fake_clock: FakeClock) -> None:
    account.grant_credits("acme", 10_000_000)
    issued = keys.create_key("acme", budget=KeyBudget(limit_micro_usd=200, period="day"))
    while call("POST", CHAT, body={**NO_LIMIT, "max_tokens": 20}, key=issued.secret).status == 200:
        pass
    ledger.settle()
    fake_clock.set((fake_clock.at // 86_400 + 1) * 86_400 + 5)  # just past midnight UTC
    assert call("POST", CHAT, body={**NO_LIMIT, "max_tokens": 20}, key=issued.secret).status == 200


def test_a_team_sets_budgets_on_its_own_keys_but_a_capped_key_cannot_uncap_itself(acme_key: str) -> None:
    capped = keys.create_key("acme", name="ci", budget=KeyBudget(limit_micro_usd=5_000_000, period="day"))
    cap = {"limit_micro_usd": 1_000_000, "period": "day"}
    # The team's (uncapped) key sets and removes budgets on its keys.
    reply = call("PUT", f"/me/keys/{capped.key.key_id}/budget", body=cap, key=acme_key)
    assert (reply.status, reply.json()["budget"]["limit_micro_usd"]) == (200, 1_000_000)
    # The capped key may lower its own budget, never raise or remove it...
    lower = {"limit_micro_usd": 500_000, "period": "day"}
    assert call("PUT", f"/me/keys/{capped.key.key_id}/budget", body=lower, key=capped.secret).status == 200
    keys.clear_cache()
    raise_ = call("PUT", f"/me/keys/{capped.key.key_id}/budget", body=cap, key=capped.secret)
    assert (raise_.status, raise_.json()["code"]) == (403, "budget_exceeds_caller")
    remove = call("DELETE", f"/me/keys/{capped.key.key_id}/budget", key=capped.secret)
    assert remove.status == 403
    # ...nor mint an uncapped key: the keys it creates get its own cap at most.
    minted = call("POST", "/me/keys", body={"name": "sneaky"}, key=capped.secret)
    assert minted.status == 201
    assert minted.json()["budget"]["limit_micro_usd"] == 500_000
    wider = call("POST", "/me/keys", body={"budget": cap}, key=capped.secret)
    assert wider.status == 403


def test_a_key_budget_must_be_well_formed(acme_key: str, admin: str) -> None:
    target = _key_id(acme_key)
    for bad in ({"limit_micro_usd": -1, "period": "day"}, {"limit_micro_usd": 5, "period": "week"}, {}):
        reply = call("PUT", f"/admin/teams/acme/keys/{target}/budget", body=bad, key=admin)
        assert reply.status == 400, bad
    reply = call(
        "PUT",
        "/admin/teams/acme/keys/key_nope/budget",
        body={"limit_micro_usd": 1, "period": "day"},
        key=admin,
    )
    assert reply.status == 404
    listed = json.loads(call("GET", "/me/keys", key=acme_key).body)["data"]
    assert all(k["budget"] is None for k in listed)
