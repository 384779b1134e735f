"""POST /v1/messages: Anthropic's Messages format in, any provider behind, Anthropic's out."""

from __future__ import annotations

import json

from aigw import clock
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import VendorScript, VendorServer

MESSAGES = "/v1/messages"
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _events(body: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_anthropic_format_reaches_an_openai_model(vendors: VendorServer, key: str) -> None:
    vendors.reset(VendorScript(text="Hi from OpenAI", prompt_tokens=30, completion_tokens=5))
    body = {
        "model": "openai/gpt-4o-mini",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "stop_sequences": ["END"],
    }
    reply = call("POST", MESSAGES, body=body, headers={"x-api-key": key})
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert answer["type"] == "message"
    assert answer["role"] == "assistant"
    assert answer["content"] == [{"type": "text", "text": "Hi from OpenAI"}]
    assert answer["stop_reason"] == "end_turn"
    assert answer["usage"]["input_tokens"] == 30
    assert answer["usage"]["output_tokens"] == 5
    sent = vendors.requests[0].json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["max_completion_tokens"], sent["stop"]) == (100, ["END"])  # OpenAI's own field
    assert "max_tokens" not in sent
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert (record.route, record.model) == ("/v1/messages", "openai/gpt-4o-mini")


def test_tool_use_round_trip_in_anthropic_format(vendors: VendorServer, key: str) -> None:
    vendors.reset(VendorScript(tool_call=("get_weather", {"city": "Rome"})))
    body = {
        "model": "gemini/gemini-2.5-flash",
        "max_tokens": 100,
        "tools": [WEATHER],
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
    }
    answer = call("POST", MESSAGES, body=body, key=key).json()
    assert answer["stop_reason"] == "tool_use"
    (tool_use,) = answer["content"]
    assert (tool_use["type"], tool_use["name"], tool_use["input"]) == (
        "tool_use",
        "get_weather",
        {"city": "Rome"},
    )
    assert vendors.requests[0].json()["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    followup = {
        **body,
        "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "content": [tool_use]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "25C"}],
            },
        ],
    }
    vendors.reset(VendorScript(text="It is 25C"))
    assert call("POST", MESSAGES, body=followup, key=key).json()["content"][0]["text"] == "It is 25C"
    contents = vendors.requests[0].json()["contents"]
    assert contents[1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert contents[2]["parts"][0]["functionResponse"] == {
        "name": "get_weather",
        "response": {"result": "25C"},
    }


def test_streamed_anthropic_events(vendors: VendorServer, key: str) -> None:
    vendors.reset(VendorScript(text="one two three", pieces=3, completion_tokens=3))
    body = {
        "model": "bedrock/nova-lite",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "Count"}],
    }
    reply = call("POST", MESSAGES, body=body, key=key)
    assert reply.status == 200
    events = _events(reply.body)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 1
    text = "".join(str(data["delta"]["text"]) for name, data in events if name == "content_block_delta")  # type: ignore[index]
    assert text == "one two three"
    delta = dict(events[-2][1])
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3  # type: ignore[index]


def test_errors_are_in_anthropic_shape(key: str) -> None:
    reply = call(
        "POST", MESSAGES, body={"model": "x", "messages": []}, headers={"x-api-key": "sk-aigw-wrong"}
    )
    assert reply.status == 401
    assert reply.json()["type"] == "error"
    assert reply.json()["error"]["type"] == "authentication_error"
    missing = call(
        "POST", MESSAGES, body={"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}, key=key
    )
    assert missing.status == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.json()["error"]["message"]


def test_empty_content_is_a_400_not_a_500(key: str) -> None:
    # Found by schemathesis: an empty content list left nothing to translate and crashed.
    reply = call(
        "POST",
        MESSAGES,
        body={"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": []}]},
        key=key,
    )
    assert reply.status == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert "messages.0.content" in reply.json()["error"]["message"]
