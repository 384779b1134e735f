"""Retries, fallbacks and streams cut short: what a caller sees and what gets billed."""

from __future__ import annotations

import json

import pytest

from aigw import catalog, clock, keys, teams
from aigw.chat import ChatRequest
from aigw.invocation import stream_chat_completion
from aigw.usage import records as usage_records
from tests.conftest import reset_core
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import VendorScript, VendorServer, anthropic_error, gemini_error, openai_error

CHAT = "/v1/chat/completions"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(clock, "sleep", slept.append)
    return slept


def _records() -> list[usage_records.UsageRecord]:
    return sorted(
        usage_records.records_for_day("acme", clock.iso(clock.now())[:10]), key=lambda r: r.created_at_ms
    )


def _body(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi there"}], **extra}


def test_429_is_retried_after_the_vendors_retry_after(
    vendors: VendorServer, key: str, pauses: list[float]
) -> None:
    vendors.reset(VendorScript(failures=[openai_error(429, "Rate limit", headers={"Retry-After": "2"})]))
    reply = call("POST", CHAT, body=_body("openai/gpt-4o-mini"), key=key)
    assert reply.status == 200
    assert pauses == [2.0]
    assert len(vendors.requests) == 2
    (record,) = _records()  # retries of one model are one metered attempt
    assert record.status == 200


def test_5xx_is_retried_with_backoff_then_becomes_502(
    vendors: VendorServer, key: str, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_RETRY_BASE_SECONDS", "0.5")
    monkeypatch.setenv("UPSTREAM_MAX_RETRIES", "2")
    reset_core()
    vendors.reset(VendorScript(failures=[openai_error(500, "boom")] * 3))
    reply = call("POST", CHAT, body=_body("openai/gpt-4o-mini"), key=key)
    assert reply.status == 502
    assert len(vendors.requests) == 3
    assert len(pauses) == 2
    assert 0.25 <= pauses[0] <= 0.5
    assert 0.5 <= pauses[1] <= 1.0


def test_a_long_retry_after_is_not_waited_for(vendors: VendorServer, key: str, pauses: list[float]) -> None:
    vendors.reset(VendorScript(failures=[openai_error(429, "Rate limit", headers={"Retry-After": "60"})]))
    reply = call("POST", CHAT, body=_body("openai/gpt-4o-mini"), key=key)
    assert reply.status == 429
    assert reply.header("Retry-After") == "60"
    assert pauses == []


def test_caller_errors_are_not_retried(vendors: VendorServer, key: str, pauses: list[float]) -> None:
    vendors.reset(VendorScript(failures=[openai_error(400, "bad")] * 3))
    assert call("POST", CHAT, body=_body("openai/gpt-4o-mini"), key=key).status == 400
    assert len(vendors.requests) == 1


def test_alias_chain_falls_back_to_the_next_provider(
    vendors: VendorServer, key: str, pauses: list[float]
) -> None:
    catalog.put_alias("smart", ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"])
    overloaded = anthropic_error(529, "overloaded_error", "Overloaded")
    vendors.reset(VendorScript(text="from the fallback", failures=[overloaded] * 3))
    reply = call("POST", CHAT, body=_body("smart"), key=key)
    assert reply.status == 200, reply.body
    assert reply.json()["model"] == "smart"
    assert reply.json()["choices"][0]["message"]["content"] == "from the fallback"
    assert vendors.paths() == ["/anthropic/v1/messages"] * 3 + ["/openai/v1/chat/completions"]
    failed, served = _records()
    assert (failed.model, failed.status, failed.cost_micro_usd) == ("anthropic/claude-haiku-4-5", 502, 0)
    assert (served.model, served.status) == ("openai/gpt-4o-mini", 200)
    assert served.request_id == failed.request_id + "#fb1"
    assert served.cost_micro_usd > 0


def test_model_fallbacks_from_a_catalog_override(
    vendors: VendorServer, key: str, pauses: list[float]
) -> None:
    primary = catalog.catalog().models["gemini/gemini-2.5-flash"]
    entry = catalog.ModelEntry.model_validate(
        {**primary.model_dump(), "fallbacks": ["mistral/mistral-small-latest"]}
    )
    catalog.put_model(entry)
    vendors.reset(VendorScript(failures=[gemini_error(429, "exhausted", "RESOURCE_EXHAUSTED")] * 3))
    reply = call("POST", CHAT, body=_body("gemini/gemini-2.5-flash"), key=key)
    assert reply.status == 200, reply.body
    assert [r.model for r in _records()] == ["gemini/gemini-2.5-flash", "mistral/mistral-small-latest"]
    assert [r.status for r in _records()] == [429, 200]


def test_fallbacks_skip_models_the_key_may_not_use(vendors: VendorServer, pauses: list[float]) -> None:
    teams.create_team("acme")
    limited = keys.create_key("acme", allowed_models=["anthropic/*"]).secret
    catalog.put_alias("smart", ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"])
    vendors.reset(VendorScript(failures=[anthropic_error(529, "overloaded_error", "Overloaded")] * 3))
    reply = call("POST", CHAT, body=_body("smart"), key=limited)
    assert reply.status == 502
    assert "/openai/v1/chat/completions" not in vendors.paths()


def test_streams_fall_back_before_the_first_byte(
    vendors: VendorServer, key: str, pauses: list[float]
) -> None:
    catalog.put_alias("smart", ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"])
    vendors.reset(
        VendorScript(
            text="streamed fallback", failures=[anthropic_error(529, "overloaded_error", "Overloaded")] * 3
        )
    )
    reply = call("POST", CHAT, body=_body("smart", stream=True), key=key)
    assert reply.status == 200
    assert "streamed fallback" in "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in reply.body.split("\n")
        if line.startswith("data: {")
    )


def test_stream_without_include_usage_has_no_usage_chunk_but_is_metered(
    vendors: VendorServer, key: str
) -> None:
    vendors.reset(VendorScript(completion_tokens=42))
    reply = call("POST", CHAT, body=_body("openai/gpt-4o-mini", stream=True), key=key)
    assert '"usage"' not in reply.body
    assert reply.body.endswith("data: [DONE]\n\n")
    (record,) = _records()
    assert (record.completion_tokens, record.usage_source) == (42, "provider")


def test_vendor_failing_mid_stream_ends_with_an_error_event_and_bills_what_was_sent(
    vendors: VendorServer, key: str
) -> None:
    vendors.reset(VendorScript(text="alpha beta gamma delta", pieces=4, cut_after=5))
    reply = call("POST", CHAT, body=_body("anthropic/claude-haiku-4-5", stream=True), key=key)
    assert reply.status == 200
    last = [line for line in reply.body.split("\n") if line.startswith("data: ")][-1]
    assert "error" in json.loads(last[6:])
    assert "[DONE]" not in reply.body
    (record,) = _records()
    assert record.usage_source == "estimate"
    assert record.completion_tokens > 0  # "alpha " reached the caller and is billed


def test_a_caller_that_goes_away_mid_stream_is_billed_what_the_vendor_bills(
    vendors: VendorServer, key: str
) -> None:
    vendors.reset(VendorScript(text=" ".join(f"word{i}" for i in range(40)), pieces=20))
    api_key = keys.authenticate(key)
    request = ChatRequest.model_validate(_body("openai/gpt-4o-mini", stream=True))
    stream = stream_chat_completion(api_key, request, request_id="req-cut")
    chunks = iter(stream)
    [next(chunks) for _ in range(4)]  # role chunk and three pieces, then the caller leaves
    assert _records() == []  # nothing is billed while the stream is open
    stream.close()
    (record,) = _records()
    assert record.request_id == "req-cut"
    # The vendor generates (and bills) the whole answer whether or not anyone reads it: the
    # gateway read the rest of the stream, unseen, for the vendor's own usage (issue 11, item 3).
    assert (record.usage_source, record.completion_tokens) == ("provider", 500)
    assert "client_disconnected" in record.flags
    assert record.cost_micro_usd > 0
