"""Embeddings, the Responses API, model retrieval, the response cache and count_tokens, driven
by the official openai and anthropic SDKs against the local runner."""

from __future__ import annotations

import json
import secrets

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.e2e.conftest import Runner
from tests.helpers.fake_vendors import VendorScript

TEAM = "demo"  # the team of the runner's first key
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def _client(runner: Runner) -> openai.OpenAI:
    return openai.OpenAI(api_key=runner.team_key, base_url=runner.base_url + "/v1", max_retries=0)


def test_embeddings_float_and_base64(runner: Runner) -> None:
    client = _client(runner)
    floats = client.embeddings.create(model="mock/embed", input=["alpha", "beta"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 1536
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens > 0
    # The SDK's default asks for base64 and decodes it: the same vectors come back.
    decoded = client.embeddings.create(model="mock/embed", input=["alpha", "beta"])
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    short = client.embeddings.create(
        model="mock/embed", input="alpha", dimensions=64, encoding_format="base64"
    )
    assert isinstance(short.data[0].embedding, str)


def test_models_retrieve(runner: Runner) -> None:
    model = _client(runner).models.retrieve("mock/echo")
    assert (model.id, model.owned_by) == ("mock/echo", "mock")
    with pytest.raises(openai.NotFoundError):
        _client(runner).models.retrieve("openai/no-such-model")


def test_unknown_path_is_an_sdk_not_found(runner: Runner) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _client(runner).get("/nothing/here", cast_to=object)
    assert "Invalid URL" in str(caught.value)


def test_responses_create_text(runner: Runner) -> None:
    response = _client(runner).responses.create(model="mock/echo", input="Hello", instructions="Be brief")
    assert response.output_text == "Echo: Hello"
    assert response.usage is not None
    assert response.usage.output_tokens > 0


def test_responses_stream_text(runner: Runner) -> None:
    with _client(runner).responses.stream(model="mock/echo", input="one two three") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Echo: one two three"
    assert final.output_text == "Echo: one two three"
    assert final.usage is not None
    assert final.usage.total_tokens > 0


def test_responses_function_call_round_trip(runner: Runner) -> None:
    client = _client(runner)
    first = client.responses.create(model="mock/echo", input="Paris", tools=[WEATHER])  # type: ignore[list-item]
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    second = client.responses.create(
        model="mock/echo",
        previous_response_id=first.id,
        tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
    )
    assert second.output_text == "Echo: sunny, 21C"
    with client.responses.stream(model="mock/echo", input="Rome", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        final = stream.get_final_response()
    assert final.output[0].type == "function_call"


class Place(BaseModel):
    city: str


def test_responses_json_schema_output(runner: Runner) -> None:
    parsed = _client(runner).responses.parse(model="mock/echo", input="Oslo", text_format=Place)
    assert parsed.output_parsed == Place(city="Oslo")


def test_cache_miss_then_hit(runner: Runner) -> None:
    client = _client(runner)
    question = f"cache me {secrets.token_hex(4)}"
    kwargs = {
        "model": "mock/echo",
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "extra_headers": {"x-aigw-cache": "on"},
    }
    miss = client.chat.completions.with_raw_response.create(**kwargs)  # type: ignore[call-overload]
    hit = client.chat.completions.with_raw_response.create(**kwargs)  # type: ignore[call-overload]
    assert (miss.headers["x-aigw-cache"], hit.headers["x-aigw-cache"]) == ("miss", "hit")
    assert hit.parse().choices[0].message.content == f"Echo: {question}"
    assert hit.parse().usage.total_tokens == miss.parse().usage.total_tokens
    rid = hit.headers["x-request-id"]
    (record,) = runner.usage_records(TEAM, lambda r: r.request_id == rid)
    assert record.cache_hit
    assert record.cost_micro_usd == 0
    assert record.cost_saved_micro_usd > 0


def test_anthropic_count_tokens(runner: Runner) -> None:
    client = anthropic.Anthropic(api_key=runner.team_key, base_url=runner.base_url, max_retries=0)
    counted = client.messages.count_tokens(
        model="mock/echo", messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    assert counted.input_tokens > 0
    exact = client.messages.count_tokens(
        model="anthropic/claude-haiku-4-5", messages=[{"role": "user", "content": "Hi"}]
    )
    assert exact.input_tokens == 4242


def test_a_client_that_hangs_up_on_a_response_stream_is_billed_what_the_vendor_bills(runner: Runner) -> None:
    # Translated through the chat adapters (OpenAI's own passthrough: tests/integration).
    model = "groq/llama-3.1-8b-instant"
    words = " ".join(f"w{i}" for i in range(400))
    runner.vendors.reset(VendorScript(text=words, pieces=200, event_delay=0.01))
    headers = {"Authorization": f"Bearer {runner.team_key}"}
    deltas = 0
    body = {"model": model, "input": f"cut {secrets.token_hex(4)}", "stream": True}
    with httpx.stream(
        "POST", runner.base_url + "/v1/responses", json=body, headers=headers, timeout=30
    ) as reply:
        assert reply.status_code == 200
        rid = reply.headers["x-request-id"]
        for line in reply.iter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                deltas += 1
            if deltas == 5:
                break  # the client hangs up
    # The vendor generates (and bills) the whole answer: the gateway reads the rest, unseen.
    (record,) = runner.usage_records(TEAM, lambda r: r.request_id == rid)
    assert (record.route, record.model) == ("/v1/responses", model)
    assert "client_disconnected" in record.flags
    assert (record.status, record.usage_source, record.completion_tokens) == (200, "provider", 500)
    assert record.cost_micro_usd > 0
