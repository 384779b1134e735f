"""Every vendor adapter over real HTTP to a fake speaking that vendor's wire format, through
the real /v1/chat/completions handler, with DynamoDB Local metering behind it."""

from __future__ import annotations

import json

import pytest

from aigw import clock
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import (
    VendorScript,
    VendorServer,
    anthropic_error,
    bedrock_error,
    gemini_error,
    openai_error,
)

CHAT = "/v1/chat/completions"
# One model per adapter, with the path its request must reach.
MODELS = {
    "openai/gpt-4o-mini": "/openai/v1/chat/completions",
    "azure/gpt-4o-mini": "/azure/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
    "groq/llama-3.1-8b-instant": "/groq/v1/chat/completions",
    "ollama/llama3.2": "/ollama/v1/chat/completions",
    "mistral/mistral-small-latest": "/mistral/v1/chat/completions",
    "anthropic/claude-haiku-4-5": "/anthropic/v1/messages",
    "gemini/gemini-2.5-flash": "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
    "bedrock/nova-lite": "/bedrock/model/us.amazon.nova-lite-v1%3A0/converse",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _body(model: str, **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 1000,
        **extra,
    }


def _sse_chunks(body: str) -> list[dict[str, object]]:
    events = [line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]", body
    return [json.loads(e) for e in events[:-1]]


@pytest.mark.parametrize("model", list(MODELS))
def test_each_vendor_answers_in_openai_shape_and_is_metered(
    vendors: VendorServer, key: str, model: str
) -> None:
    vendors.reset(
        VendorScript(
            text="Bonjour from the fake", prompt_tokens=1000, completion_tokens=500, cached_tokens=200
        )
    )
    reply = call("POST", CHAT, body=_body(model), key=key)
    assert reply.status == 200, reply.body
    assert vendors.paths() == [MODELS[model]]
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == model
    assert body["choices"][0]["message"]["content"] == "Bonjour from the fake"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 1000
    assert body["usage"]["completion_tokens"] == 500
    (record,) = _records()
    assert (record.model, record.status, record.usage_source) == (model, 200, "provider")
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (1000, 500, 200)
    assert record.cost_micro_usd > 0 or model.startswith("ollama/")


@pytest.mark.parametrize("model", list(MODELS))
def test_each_vendor_streams_openai_chunks_with_usage(vendors: VendorServer, key: str, model: str) -> None:
    vendors.reset(VendorScript(text="one two three four five six", pieces=3))
    reply = call(
        "POST", CHAT, body=_body(model, stream=True, stream_options={"include_usage": True}), key=key
    )
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type") == "text/event-stream"
    chunks = _sse_chunks(reply.body)
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    text = "".join(str(ch["delta"].get("content") or "") for c in chunks for ch in c["choices"])  # type: ignore[attr-defined]
    assert text == "one two three four five six"
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 2  # type: ignore[index]
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]  # type: ignore[attr-defined]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 500  # type: ignore[index]
    (record,) = _records()
    assert (record.status, record.usage_source, record.completion_tokens) == (200, "provider", 500)


@pytest.mark.parametrize("model", list(MODELS))
def test_each_vendor_translates_tool_calls_both_ways(vendors: VendorServer, key: str, model: str) -> None:
    vendors.reset(VendorScript(tool_call=("get_weather", {"city": "Paris"})))
    body = _body(model, tools=[WEATHER_TOOL], tool_choice="auto")
    reply = call("POST", CHAT, body=body, key=key)
    assert reply.status == 200, reply.body
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris"}
    # ... and the answer to the tool goes back in the vendor's format, which the fakes check.
    followup = _body(
        model,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": tool_call["id"], "content": '{"temp_c": 21}'},
        ],
    )
    vendors.reset(VendorScript(text="21 degrees"))
    again = call("POST", CHAT, body=followup, key=key)
    assert again.status == 200, again.body
    assert again.json()["choices"][0]["message"]["content"] == "21 degrees"


@pytest.mark.parametrize("model", list(MODELS))
def test_streamed_tool_calls_arrive_as_openai_deltas(vendors: VendorServer, key: str, model: str) -> None:
    vendors.reset(VendorScript(tool_call=("get_weather", {"city": "Oslo"})))
    reply = call("POST", CHAT, body=_body(model, tools=[WEATHER_TOOL], stream=True), key=key)
    assert reply.status == 200, reply.body
    chunks = _sse_chunks(reply.body)
    deltas = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or []]  # type: ignore[attr-defined]
    assert deltas[0]["id"]
    assert deltas[0]["function"]["name"] == "get_weather"
    arguments = "".join(d["function"].get("arguments") or "" for d in deltas)
    assert json.loads(arguments) == {"city": "Oslo"}
    assert [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]] == [
        "tool_calls"
    ]  # type: ignore[attr-defined]
    assert all(c["choices"] for c in chunks)  # no usage chunk: the caller did not ask for it


def test_anthropic_request_translation(vendors: VendorServer, key: str) -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    body = {
        "model": "anthropic/claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
        ],
        "temperature": 1.5,
        "stop": "END",
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_object"},
        "user": "u-42",
    }
    assert call("POST", CHAT, body=body, key=key).status == 200
    (sent,) = vendors.requests
    assert sent.headers["x-api-key"] == "vendor-key-anthropic"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    payload = sent.json()
    assert payload["model"] == "claude-haiku-4-5-20251001"
    assert payload["max_tokens"] == 4096  # required by Anthropic: the plan's default, as reserved
    assert payload["system"].startswith("Be brief.")
    assert "JSON" in payload["system"]
    assert payload["temperature"] == 1.0
    assert payload["stop_sequences"] == ["END"]
    assert payload["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert payload["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]  # type: ignore[index]
    assert payload["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert payload["metadata"] == {"user_id": "u-42"}


def test_gemini_request_translation(vendors: VendorServer, key: str) -> None:
    body = {
        "model": "gemini/gemini-2.5-flash",
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.3,
        "top_p": 0.9,
        "max_completion_tokens": 50,
        "stop": ["x", "y"],
        "seed": 7,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": {"type": "object"}},
        },
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
    }
    assert call("POST", CHAT, body=body, key=key).status == 200
    (sent,) = vendors.requests
    assert sent.headers["x-goog-api-key"] == "vendor-key-gemini"
    payload = sent.json()
    assert payload["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert payload["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    assert payload["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "seed": 7,
        "maxOutputTokens": 50,
        "stopSequences": ["x", "y"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert payload["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert payload["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_mistral_request_translation(vendors: VendorServer, key: str) -> None:
    body = _body(
        "mistral/mistral-small-latest",
        seed=3,
        tool_choice="required",
        tools=[WEATHER_TOOL],
        logit_bias={"1": 2},
    )
    reply = call("POST", CHAT, body=body, key=key)
    assert reply.status == 200, reply.body  # the fake refuses unknown fields with 422, as Mistral does
    payload = vendors.requests[0].json()
    assert payload["random_seed"] == 3
    assert payload["tool_choice"] == "any"
    assert "logit_bias" not in payload
    assert "seed" not in payload


def test_bedrock_request_translation(vendors: VendorServer, key: str) -> None:
    body = _body(
        "bedrock/nova-lite", temperature=0.5, stop=["END"], tools=[WEATHER_TOOL], tool_choice="required"
    )
    assert call("POST", CHAT, body=body, key=key).status == 200
    (sent,) = vendors.requests
    assert "AWS4-HMAC-SHA256" in sent.headers["Authorization"]  # IAM-signed, no API key
    payload = sent.json()
    assert payload["system"] == [{"text": "Be brief."}]
    assert payload["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert payload["inferenceConfig"] == {"maxTokens": 1000, "temperature": 0.5, "stopSequences": ["END"]}
    assert payload["toolConfig"]["toolChoice"] == {"any": {}}
    assert payload["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": WEATHER_TOOL["function"]["parameters"]
    }  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "failure", "status", "fragment"),
    [
        (
            "anthropic/claude-haiku-4-5",
            anthropic_error(529, "overloaded_error", "Overloaded"),
            502,
            "Overloaded",
        ),
        (
            "anthropic/claude-haiku-4-5",
            anthropic_error(429, "rate_limit_error", "Slow down", headers={"retry-after": "30"}),
            429,
            "Slow down",
        ),
        (
            "anthropic/claude-haiku-4-5",
            anthropic_error(400, "invalid_request_error", "prompt is too long"),
            400,
            "prompt is too long",
        ),
        (
            "gemini/gemini-2.5-flash",
            gemini_error(429, "Resource has been exhausted", "RESOURCE_EXHAUSTED"),
            429,
            "exhausted",
        ),
        (
            "gemini/gemini-2.5-flash",
            gemini_error(500, "Internal error encountered.", "INTERNAL"),
            502,
            "Internal error",
        ),
        (
            "mistral/mistral-small-latest",
            openai_error(503, "Service unavailable"),
            502,
            "Service unavailable",
        ),
        (
            "bedrock/nova-lite",
            bedrock_error(429, "ThrottlingException", "Too many requests, please wait"),
            429,
            "Too many requests",
        ),
        (
            "bedrock/nova-lite",
            bedrock_error(400, "ValidationException", "Malformed input request"),
            400,
            "Malformed input",
        ),
        (
            "bedrock/nova-lite",
            bedrock_error(500, "InternalServerException", "Internal server error"),
            502,
            "Internal server",
        ),
    ],
)
def test_vendor_errors_become_openai_errors(
    vendors: VendorServer, key: str, model: str, failure: object, status: int, fragment: str
) -> None:
    vendors.reset(VendorScript(failures=[failure] * 5))  # type: ignore[list-item]
    reply = call("POST", CHAT, body=_body(model), key=key)
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    (record,) = _records()
    assert (record.status, record.cost_micro_usd) == (status, 0)
    if status == 429 and model.startswith("anthropic/"):
        assert reply.header("Retry-After") == "30"


def test_missing_vendor_key_is_a_502_naming_the_provider(
    vendors: VendorServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import reset_core

    monkeypatch.delenv("GEMINI_API_KEY")
    reset_core()
    reply = call("POST", CHAT, body=_body("gemini/gemini-2.5-flash"), key=key)
    assert reply.status == 502
    assert reply.json()["error"]["code"] == "provider_not_configured"
    assert vendors.requests == []


PIXEL = "iVBORw0KGgo="


def test_gemini_and_bedrock_take_images_inline(vendors: VendorServer, key: str) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    for model in ("gemini/gemini-2.5-flash", "bedrock/nova-lite"):
        assert (
            call(
                "POST",
                CHAT,
                body={"model": model, "messages": [{"role": "user", "content": content}]},
                key=key,
            ).status
            == 200
        )
    gemini, bedrock = (r.json() for r in vendors.requests)
    assert gemini["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PIXEL}}
    # botocore sends blobs base64-encoded on the JSON wire
    assert bedrock["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": PIXEL}}}


def test_bedrock_refuses_web_image_urls_with_a_400(vendors: VendorServer, key: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    reply = call(
        "POST",
        CHAT,
        body={"model": "bedrock/nova-lite", "messages": [{"role": "user", "content": content}]},
        key=key,
    )
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "messages"
    assert vendors.requests == []
