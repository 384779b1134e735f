"""The OpenAI adapter over real HTTP to a fake OpenAI server, with DynamoDB Local behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aigw import clock
from aigw.usage import records as usage_records
from tests.conftest import reset_core
from tests.helpers.apigw import call
from tests.helpers.fake_upstream import (
    FakeUpstream,
    Recorded,
    Scripted,
    openai_completion,
    openai_error,
    openai_upstream,
)

CHAT = "/v1/chat/completions"
BODY = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "temperature": 0.2,
    "max_tokens": 64,
    "logit_bias": {"50256": -100},
}


class Script:
    def __init__(self) -> None:
        self.next: Scripted | None = None

    def __call__(self, request: Recorded) -> Scripted:
        return self.next or openai_completion(request, cached=200)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def upstream(script: Script, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    with openai_upstream(script, monkeypatch, timeout_seconds=1) as server:
        yield server


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def test_request_is_forwarded_with_upstream_model_and_vendor_key(upstream: FakeUpstream, key: str) -> None:
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 200, reply.body
    (sent,) = upstream.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-upstream-test"
    assert key not in str(sent.headers)  # the gateway key never reaches the vendor
    payload = sent.json()
    assert payload["model"] == "gpt-4o-mini"
    assert payload["messages"] == BODY["messages"]
    assert (payload["temperature"], payload["max_completion_tokens"]) == (0.2, 64)
    assert "max_tokens" not in payload  # OpenAI's reasoning models refuse it
    assert payload["logit_bias"] == {"50256": -100}  # unknown fields pass through
    body = reply.json()
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["choices"][0]["message"]["content"] == "Hi from fake OpenAI"


def test_usage_and_cost_are_recorded_from_the_vendor_usage(upstream: FakeUpstream, key: str) -> None:
    call("POST", CHAT, body=BODY, key=key)
    (record,) = _records()
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (1000, 500, 200)
    # gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per 1M tokens.
    assert record.cost_micro_usd == 800 * 0.15 + 200 * 0.075 + 500 * 0.60
    assert record.provider == "openai"


def test_vendor_5xx_becomes_502_with_its_message(upstream: FakeUpstream, script: Script, key: str) -> None:
    script.next = openai_error(500, "The server had an error\nwhile processing your request")
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 502
    error = reply.json()["error"]
    assert error["message"] == "OpenAI error: The server had an error while processing your request"
    assert error["code"] == "upstream_error"
    (record,) = _records()
    assert (record.status, record.cost_micro_usd) == (502, 0)


def test_vendor_429_stays_429_with_retry_after(upstream: FakeUpstream, script: Script, key: str) -> None:
    script.next = openai_error(429, "Rate limit reached", headers={"Retry-After": "7"})
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 429
    assert reply.header("Retry-After") == "7"
    assert "Rate limit reached" in reply.json()["error"]["message"]


def test_vendor_400_is_the_callers_400(upstream: FakeUpstream, script: Script, key: str) -> None:
    script.next = openai_error(400, "Invalid 'messages[0].role'", code="invalid_value")
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 400
    assert "Invalid 'messages[0].role'" in reply.json()["error"]["message"]


def test_vendor_auth_failure_is_our_problem_not_the_callers(
    upstream: FakeUpstream, script: Script, key: str
) -> None:
    script.next = openai_error(401, "Incorrect API key provided: sk-upstr***test")
    assert call("POST", CHAT, body=BODY, key=key).status == 502


def test_hanging_vendor_gives_504_within_the_timeout(
    upstream: FakeUpstream, script: Script, key: str
) -> None:
    script.next = Scripted(delay=3, body={})
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 504
    assert reply.json()["error"]["code"] == "upstream_timeout"


def test_unreachable_vendor_gives_502(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigw_local.dynamodb_local import free_port

    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-test")
    reset_core()
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 502
    assert "could not be reached" in reply.json()["error"]["message"]


def test_non_json_vendor_error_is_passed_on_safely(upstream: FakeUpstream, script: Script, key: str) -> None:
    script.next = Scripted(status=503, body=b"<html>\x00upstream\x1b[31m down</html>")
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 502
    message = reply.json()["error"]["message"]
    assert "\x00" not in message
    assert "\x1b" not in message
    assert "upstream" in message
