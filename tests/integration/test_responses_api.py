"""POST /v1/responses through the real handler: OpenAI straight through, other vendors (and
mock/echo) translated through the chat adapters, typed stream events, stored conversations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aigw import clock
from aigw.streaming import StreamingResponse
from aigw.usage import records as usage_records
from tests.helpers.apigw import build_event, call, invoke_handler
from tests.helpers.fake_vendors import VendorScript, VendorServer

ROUTE = "/v1/responses"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.split("\n") if line.startswith("data: ")]


def test_text_through_the_chat_adapters_is_a_response_object_and_is_metered(key: str) -> None:
    reply = call(
        "POST", ROUTE, body={"model": "mock/echo", "input": "Hello", "instructions": "Be brief"}, key=key
    )
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert body["model"] == "mock/echo"
    (message,) = body["output"]
    assert message["content"][0]["text"] == "Echo: Hello"
    (record,) = _records()
    assert (record.route, record.status) == (ROUTE, 200)
    assert body["usage"]["input_tokens"] == record.prompt_tokens
    assert body["usage"]["output_tokens"] == record.completion_tokens


def test_function_call_round_trip_with_mock_echo(key: str) -> None:
    first = call(
        "POST", ROUTE, body={"model": "mock/echo", "input": "Paris", "tools": [WEATHER]}, key=key
    ).json()
    (fc,) = first["output"]
    assert (fc["type"], fc["name"], json.loads(fc["arguments"])) == (
        "function_call",
        "get_weather",
        {"city": "Paris"},
    )
    followup = {
        "model": "mock/echo",
        "tools": [WEATHER],
        "input": [
            {"role": "user", "content": "Paris"},
            fc,
            {"type": "function_call_output", "call_id": fc["call_id"], "output": '{"temp_c": 21}'},
        ],
    }
    second = call("POST", ROUTE, body=followup, key=key)
    assert second.status == 200, second.body
    assert second.json()["output"][0]["content"][0]["text"] == 'Echo: {"temp_c": 21}'


def test_previous_response_id_continues_a_stored_conversation_of_this_team_only(key: str) -> None:
    first = call(
        "POST", ROUTE, body={"model": "mock/echo", "input": "Paris", "tools": [WEATHER]}, key=key
    ).json()
    fc = first["output"][0]
    answer = {"type": "function_call_output", "call_id": fc["call_id"], "output": "sunny"}
    body = {"model": "mock/echo", "previous_response_id": first["id"], "input": [answer], "tools": [WEATHER]}
    second = call("POST", ROUTE, body=body, key=key)
    assert second.status == 200, second.body
    assert second.json()["output"][0]["content"][0]["text"] == "Echo: sunny"
    assert call("GET", f"{ROUTE}/{first['id']}", key=key).json()["id"] == first["id"]

    from aigw import keys, teams

    teams.create_team("other")
    stranger = keys.create_key("other").secret
    refused = call("POST", ROUTE, body=body, key=stranger)
    assert refused.status == 400
    assert refused.json()["error"]["param"] == "previous_response_id"
    assert call("GET", f"{ROUTE}/{first['id']}", key=stranger).status == 404

    unstored = call("POST", ROUTE, body={"model": "mock/echo", "input": "x", "store": False}, key=key).json()
    assert call("GET", f"{ROUTE}/{unstored['id']}", key=key).status == 404

    assert call("DELETE", f"{ROUTE}/{first['id']}", key=stranger).status == 404  # not theirs
    deleted = call("DELETE", f"{ROUTE}/{first['id']}", key=key)
    assert deleted.json() == {"id": first["id"], "object": "response", "deleted": True}
    assert call("GET", f"{ROUTE}/{first['id']}", key=key).status == 404
    gone = call("POST", ROUTE, body=body, key=key)
    assert (gone.status, gone.json()["error"]["param"]) == (400, "previous_response_id")


def test_json_schema_output(key: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    text = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    body = call("POST", ROUTE, body={"model": "mock/echo", "input": "Oslo", "text": text}, key=key).json()
    assert json.loads(body["output"][0]["content"][0]["text"]) == {"city": "Oslo"}


def test_a_stream_is_typed_events_ending_with_usage(key: str) -> None:
    reply = call(
        "POST", ROUTE, body={"model": "mock/echo", "input": "one two three", "stream": True}, key=key
    )
    assert reply.status == 200, reply.body
    events = _events(reply.body)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Echo: one two three"
    (record,) = _records()
    assert events[-1]["response"]["usage"]["output_tokens"] == record.completion_tokens > 0


def test_a_streamed_tool_call_is_function_call_argument_deltas(key: str) -> None:
    body = {"model": "mock/echo", "input": "Rome", "tools": [WEATHER], "stream": True}
    events = _events(call("POST", ROUTE, body=body, key=key).body)
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"city": "Rome"}
    assert events[-1]["response"]["output"][0]["type"] == "function_call"


def test_openai_models_go_straight_to_openais_responses_api(vendors: VendorServer, key: str) -> None:
    vendors.reset(
        VendorScript(text="Straight through", prompt_tokens=100, completion_tokens=20, cached_tokens=40)
    )
    body = {
        "model": "openai/gpt-4o-mini",
        "input": "Hi",
        "max_output_tokens": 50,
        "tools": [WEATHER],
        "some_future_field": 1,
    }
    reply = call("POST", ROUTE, body=body, key=key)
    assert reply.status == 200, reply.body
    assert vendors.paths() == ["/openai/v1/responses"]
    sent = vendors.requests[0].json()
    assert (sent["model"], sent["store"], sent["max_output_tokens"]) == ("gpt-4o-mini", False, 50)
    assert sent["tools"] == [WEATHER]
    assert "some_future_field" not in sent
    assert "include" not in sent
    assert reply.json()["model"] == "openai/gpt-4o-mini"
    (record,) = _records()
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (100, 20, 40)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [WEATHER, {"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[1].type"),
        ({"service_tier": "priority"}, "service_tier"),
        ({"background": True}, "background"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"text": {"format": "json"}}, "text.format"),
    ],
)
def test_what_the_gateway_cannot_meter_or_keep_apart_is_refused_before_the_vendor(
    vendors: VendorServer, key: str, extra: dict[str, Any], param: str
) -> None:
    # Hosted tools, background runs and priority tiers are charged beyond tokens; stored prompts
    # and conversations live in the operator's OpenAI account.
    for stream in (False, True):
        body = {"model": "openai/gpt-4o-mini", "input": "Hi", "stream": stream, **extra}
        reply = call("POST", ROUTE, body=body, key=key)
        assert reply.status == 400, reply.body
        assert reply.json()["error"]["param"] == param
    assert vendors.paths() == []
    assert _records() == []


def test_a_reasoning_model_keeps_its_reasoning_for_the_next_turn(vendors: VendorServer, key: str) -> None:
    vendors.reset(VendorScript(text="Thought it through"))
    reply = call("POST", ROUTE, body={"model": "openai/o3-mini", "input": "Hi"}, key=key)
    assert reply.status == 200, reply.body
    sent = vendors.requests[0].json()
    assert sent["store"] is False
    assert "reasoning.encrypted_content" in sent["include"]


def test_openai_stream_passes_through_and_is_metered(vendors: VendorServer, key: str) -> None:
    vendors.reset(VendorScript(text="a b c d", completion_tokens=7))
    reply = call("POST", ROUTE, body={"model": "openai/gpt-4o-mini", "input": "Hi", "stream": True}, key=key)
    events = _events(reply.body)
    assert (
        "".join(e.get("delta", "") for e in events if e["type"] == "response.output_text.delta") == "a b c d"
    )
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["model"] == "openai/gpt-4o-mini"
    (record,) = _records()
    assert (record.usage_source, record.completion_tokens) == ("provider", 7)


@pytest.mark.parametrize(
    "model", ["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash", "bedrock/nova-lite"]
)
def test_other_vendors_translate_through_chat(vendors: VendorServer, key: str, model: str) -> None:
    vendors.reset(VendorScript(text="Translated"))
    reply = call("POST", ROUTE, body={"model": model, "input": "Hi"}, key=key)
    assert reply.status == 200, reply.body
    assert reply.json()["output"][0]["content"][0]["text"] == "Translated"


def test_bad_input_names_the_field(key: str) -> None:
    reply = call("POST", ROUTE, body={"model": "mock/echo", "input": [{"type": "bogus"}]}, key=key)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "input[0].type"
    assert call("POST", ROUTE, body={"model": "mock/echo"}, key=key).json()["error"]["param"] == "input"
    # A value of no accepted type names the field, not the union member pydantic tried.
    assert (
        call("POST", ROUTE, body={"model": "mock/echo", "input": 5}, key=key).json()["error"]["param"]
        == "input"
    )
    hosted = call(
        "POST", ROUTE, body={"model": "mock/echo", "input": "x", "tools": [{"type": "web_search"}]}, key=key
    )
    assert hosted.status == 400
    assert hosted.json()["error"]["param"] == "tools[0].type"
    for stream in (False, True):
        body = {"model": "openai/gpt-4o-mini", "input": "x", "max_output_tokens": 10**9, "stream": stream}
        too_long = call("POST", ROUTE, body=body, key=key)
        assert too_long.status == 400
        assert too_long.json()["error"]["param"] == "max_output_tokens"
        assert "max_output_tokens" in too_long.json()["error"]["message"]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_a_client_that_hangs_up_is_billed_what_the_vendor_bills(
    vendors: VendorServer, key: str, model: str
) -> None:
    words = " ".join(f"w{i}" for i in range(400))
    vendors.reset(VendorScript(text=words, pieces=200, event_delay=0.01))
    event, route = build_event("POST", ROUTE, body={"model": model, "input": "go", "stream": True}, key=key)
    answer = invoke_handler(event, route)
    assert isinstance(answer, StreamingResponse)
    received = b""
    for piece in answer.body:
        received += piece
        if received.count(b"event: response.output_text.delta") == 5:
            break  # the client hangs up: the server stops sending and closes the stream
    answer.close()
    # The vendor generates (and bills) the whole answer anyway: the rest of its stream is read
    # on, unseen, for its own usage, as for chat (OpenAI's passthrough and the translated path).
    assert not vendors.closed_early.is_set()
    (record,) = _records()
    assert record.request_id == answer.headers["x-request-id"]
    assert "client_disconnected" in record.flags
    assert (record.status, record.usage_source, record.completion_tokens) == (200, "provider", 500)
    assert record.cost_micro_usd > 0


def test_a_client_that_hangs_up_on_a_stalled_vendor_pays_the_reservation(
    vendors: VendorServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigw.config import settings

    # The rest is read on for at most the upstream timeout; this vendor needs far longer.
    monkeypatch.setenv("UPSTREAM_TIMEOUT_SECONDS", "2")
    settings.cache_clear()
    vendors.reset(VendorScript(text="a b c d e f", pieces=6, event_delay=0.5))
    body = {"model": "openai/gpt-4o-mini", "input": "go", "stream": True, "max_output_tokens": 64}
    event, route = build_event("POST", ROUTE, body=body, key=key)
    answer = invoke_handler(event, route)
    assert isinstance(answer, StreamingResponse)
    for piece in answer.body:
        if b"response.output_text.delta" in piece:
            break
    answer.close()
    (record,) = _records()
    assert set(record.flags) >= {"client_disconnected", "billed_reservation"}
    assert (record.usage_source, record.completion_tokens) == ("reservation", 64)
