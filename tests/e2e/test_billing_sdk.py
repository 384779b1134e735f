"""Billing as an SDK user meets it: 402 and 429 read through the official openai SDK."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import Runner
from tests.e2e.test_openai_sdk import _aigw, _client

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
