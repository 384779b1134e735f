"""The output limit that was reserved is the one the vendor is sent, in the vendor's own field
(issue 11, case 1). DynamoDB Local behind the real handlers, every vendor a loopback fake that
answers 1,500 completion tokens unless it is sent a limit it reads."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aigw import clock, keys, teams
from aigw.billing import account, plans
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_upstream import Recorded
from tests.helpers.fake_vendors import VendorScript, VendorServer

CHAT = "/v1/chat/completions"
LONG_ANSWER = " ".join(f"w{i}" for i in range(1500))


def _openai_field(name: str) -> Callable[[dict[str, Any]], Any]:
    def read(body: dict[str, Any]) -> Any:
        other = "max_tokens" if name == "max_completion_tokens" else "max_completion_tokens"
        assert other not in body, f"{other} sent beside {name}"
        return body.get(name)

    return read


# Each wire format, with where its vendor reads the output limit.
LIMIT_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "openai/gpt-4o-mini": _openai_field("max_completion_tokens"),
    "openai/o3-mini": _openai_field("max_completion_tokens"),  # reasoning: max_tokens is refused
    "azure/gpt-4o-mini": _openai_field("max_completion_tokens"),
    "groq/llama-3.1-8b-instant": _openai_field("max_completion_tokens"),
    "deepseek/deepseek-chat": _openai_field("max_tokens"),  # servers that know max_tokens only
    "ollama/llama3.2": _openai_field("max_tokens"),
    "mistral/mistral-small-latest": lambda body: body.get("max_tokens"),
    "anthropic/claude-haiku-4-5": lambda body: body.get("max_tokens"),
    "gemini/gemini-2.5-flash": lambda body: body["generationConfig"].get("maxOutputTokens"),
    "bedrock/nova-lite": lambda body: body["inferenceConfig"].get("maxTokens"),
}


def _limit_sent(model: str, request: Recorded) -> Any:
    return LIMIT_FIELDS[model](request.json())


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


@pytest.fixture
def tight() -> str:
    """Team acme on the issue's plan: 500 tokens a month, 16 output tokens when none are asked."""
    plans.put_plan("tight", plans.PlanSpec(monthly_tokens=500, default_max_tokens=16))
    teams.create_team("acme")
    account.assign_plan("acme", "tight")
    return keys.create_key("acme").secret


# Free models (ollama) are left out: once a plan's quota is spent, admission lets prepaid
# credits pay for the overflow, and a free call costs no credits.
@pytest.mark.parametrize("model", [m for m in LIMIT_FIELDS if not m.startswith("ollama/")])
def test_forty_parallel_streams_without_max_tokens_stay_within_their_reservations(
    vendors: VendorServer, tight: str, model: str
) -> None:
    vendors.reset(VendorScript(text=LONG_ANSWER, prompt_tokens=8, completion_tokens=1500))
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": True}

    def one(_: int) -> int:
        return call("POST", CHAT, body=body, key=tight).status

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(one, range(40)))

    assert set(statuses) == {200, 402}, statuses
    admitted = statuses.count(200)
    # Every call that reached the vendor carried the reserved limit in the vendor's own field.
    assert len(vendors.requests) == admitted
    assert [_limit_sent(model, r) for r in vendors.requests] == [16] * admitted
    records = _records()
    assert len(records) == admitted
    assert all(r.status == 200 and r.completion_tokens <= 16 for r in records)
    view = account.summary("acme")
    assert view.tokens_reserved == 0
    assert view.tokens_used == sum(r.total_tokens for r in records) <= 500


@pytest.mark.parametrize("model", list(LIMIT_FIELDS))
@pytest.mark.parametrize("stream", [False, True])
def test_each_vendor_is_sent_the_callers_limit_in_its_own_field(
    vendors: VendorServer, key: str, model: str, stream: bool
) -> None:
    vendors.reset(VendorScript(text=LONG_ANSWER, completion_tokens=1500))
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 40}
    reply = call("POST", CHAT, body={**body, "stream": stream}, key=key)
    assert reply.status == 200, reply.body
    assert "length" in reply.body  # the vendor stopped at the limit, and said so
    (sent,) = vendors.requests
    assert _limit_sent(model, sent) == 40
    (record,) = _records()
    assert record.completion_tokens == 40


@pytest.mark.parametrize("model", list(LIMIT_FIELDS))
def test_a_call_without_a_limit_is_sent_the_plans_default_capped_at_the_models_own(
    vendors: VendorServer, key: str, model: str
) -> None:
    from aigw.catalog import catalog

    reply = call(
        "POST", CHAT, body={"model": model, "messages": [{"role": "user", "content": "Hi"}]}, key=key
    )
    assert reply.status == 200, reply.body
    (sent,) = vendors.requests
    expected = min(plans.DEFAULT_MAX_TOKENS, catalog().resolve(model).max_output_tokens)
    assert _limit_sent(model, sent) == expected


def test_a_vendor_that_ignores_the_limit_is_still_sent_it(vendors: VendorServer, tight: str) -> None:
    vendors.reset(VendorScript(text=LONG_ANSWER, prompt_tokens=8, completion_tokens=1500, honour_limit=False))
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    assert call("POST", CHAT, body=body, key=tight).status == 200
    (sent,) = vendors.requests
    assert sent.json()["max_completion_tokens"] == 16
    (record,) = _records()
    assert record.completion_tokens == 1500  # billed what the vendor reported
