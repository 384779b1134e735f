"""The rest of /v1 in OpenAI's shape: model retrieval, 404/405 for unknown paths and methods,
x-request-id on every answer, Anthropic's count_tokens and its 413 type."""

from __future__ import annotations

from aigw import clock
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import VendorServer


def test_retrieve_a_model_whose_id_holds_a_slash(key: str) -> None:
    reply = call("GET", "/v1/models/mock/echo", key=key)
    assert reply.status == 200, reply.body
    card = reply.json()
    assert (card["id"], card["object"], card["owned_by"]) == ("mock/echo", "model", "mock")
    assert card["context_window"] > 0
    assert card["configured"] is True


def test_an_unknown_model_is_an_openai_404(key: str) -> None:
    reply = call("GET", "/v1/models/openai/nope", key=key)
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "model_not_found"


def test_unknown_paths_and_methods_answer_in_openai_shape(key: str) -> None:
    missing = call("POST", "/v1/nothing/here", body={}, key=key)
    assert missing.status == 404
    assert missing.header("Content-Type") == "application/json"
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/nothing/here)"
    wrong = call("GET", "/v1/chat/completions", key=key)
    assert wrong.status == 405
    assert wrong.json()["error"]["type"] == "invalid_request_error"
    assert wrong.header("Allow") == "POST"
    anonymous = call("DELETE", "/v1/embeddings")
    assert anonymous.status == 405


def test_every_answer_carries_the_request_id_of_its_usage_record(key: str) -> None:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    ok = call("POST", "/v1/chat/completions", body=body, key=key)
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert ok.header("x-request-id") == record.request_id
    streamed = call("POST", "/v1/chat/completions", body={**body, "stream": True}, key=key)
    assert streamed.header("x-request-id")
    assert call("POST", "/v1/chat/completions", body=body, key="sk-wrong").header("x-request-id")
    assert call("GET", "/v1/nope", key=key).header("x-request-id")
    assert call("POST", "/v1/chat/completions", body={}, key=key).header("x-request-id")


def test_count_tokens_estimates_for_other_vendors_and_asks_anthropic_for_its_own(
    vendors: VendorServer, key: str
) -> None:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there, how are you?"}]}
    estimated = call("POST", "/v1/messages/count_tokens", body=body, key=key)
    assert estimated.status == 200, estimated.body
    assert 5 < estimated.json()["input_tokens"] < 30
    exact = call(
        "POST", "/v1/messages/count_tokens", body={**body, "model": "anthropic/claude-haiku-4-5"}, key=key
    )
    assert exact.json() == {"input_tokens": 4242}
    assert vendors.paths() == ["/anthropic/v1/messages/count_tokens"]
    assert vendors.requests[0].json()["model"].startswith("claude-haiku-4-5")
    assert usage_records.records_for_day("acme", clock.iso(clock.now())[:10]) == []


def test_anthropic_routes_answer_413_as_request_too_large(key: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aigw.config import settings

    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    settings.cache_clear()
    body = {"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 500}]}
    reply = call("POST", "/v1/messages", body=body, key=key)
    assert reply.status == 413
    assert reply.json()["error"]["type"] == "request_too_large"
    settings.cache_clear()


def test_a_service_tier_the_catalog_does_not_price_is_refused(key: str) -> None:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], "service_tier": "priority"}
    reply = call("POST", "/v1/chat/completions", body=body, key=key)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "service_tier"
    assert call("POST", "/v1/chat/completions", body={**body, "service_tier": "auto"}, key=key).status == 200
