"""mock/echo speaks tools on every model route, plain and streamed, with no provider key: function
calling can be tried end to end on a fresh checkout."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.apigw import call

OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _data(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.split("\n") if line.startswith("data: {")]


def test_chat_completions_answers_a_tool_call_and_then_the_tools_result(key: str) -> None:
    body: dict[str, Any] = {
        "model": "mock/echo",
        "messages": [{"role": "user", "content": "Lima"}],
        "tools": [OPENAI_TOOL],
    }
    reply = call("POST", "/v1/chat/completions", body=body, key=key)
    assert reply.status == 200, reply.body
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Lima"}

    again = call("POST", "/v1/chat/completions", body=body, key=key).json()
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] == tool_call["id"]  # deterministic

    body["messages"] += [
        choice["message"],
        {"role": "tool", "tool_call_id": tool_call["id"], "content": '{"temp_c": 19}'},
    ]
    answer = call("POST", "/v1/chat/completions", body=body, key=key).json()["choices"][0]
    assert answer["finish_reason"] == "stop"
    assert answer["message"]["content"] == 'Echo: {"temp_c": 19}'


def test_chat_completions_streams_the_tool_call_as_deltas(key: str) -> None:
    body = {
        "model": "mock/echo",
        "messages": [{"role": "user", "content": "Quito"}],
        "tools": [OPENAI_TOOL],
        "stream": True,
    }
    reply = call("POST", "/v1/chat/completions", body=body, key=key)
    assert reply.status == 200, reply.body
    chunks = [c for c in _data(reply.body) if c.get("choices")]
    names = [
        d["function"]["name"]
        for c in chunks
        for d in c["choices"][0]["delta"].get("tool_calls") or []
        if d.get("function", {}).get("name")
    ]
    arguments = "".join(
        d["function"].get("arguments") or ""
        for c in chunks
        for d in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "Quito"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_choice_none_answers_in_text(key: str) -> None:
    body = {
        "model": "mock/echo",
        "messages": [{"role": "user", "content": "Lima"}],
        "tools": [OPENAI_TOOL],
        "tool_choice": "none",
    }
    message = call("POST", "/v1/chat/completions", body=body, key=key).json()["choices"][0]["message"]
    assert message["content"] == "Echo: Lima"
    assert not message.get("tool_calls")


def test_messages_answers_tool_use_plain_and_streamed(key: str) -> None:
    body: dict[str, Any] = {
        "model": "mock/echo",
        "max_tokens": 100,
        "tools": [ANTHROPIC_TOOL],
        "messages": [{"role": "user", "content": "Kyiv"}],
    }
    reply = call("POST", "/v1/messages", body=body, headers={"x-api-key": key})
    assert reply.status == 200, reply.body
    message = reply.json()
    assert message["stop_reason"] == "tool_use"
    (block,) = [b for b in message["content"] if b["type"] == "tool_use"]
    assert (block["name"], block["input"]) == ("get_weather", {"city": "Kyiv"})

    streamed = call("POST", "/v1/messages", body={**body, "stream": True}, headers={"x-api-key": key})
    assert streamed.status == 200, streamed.body
    events = _data(streamed.body)
    partial = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"city": "Kyiv"}
    (stop,) = [e for e in events if e["type"] == "message_delta"]
    assert stop["delta"]["stop_reason"] == "tool_use"
