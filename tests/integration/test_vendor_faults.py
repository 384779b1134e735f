"""Vendor answers that leak or would bill wrongly (issue 11, case 11): echoed credentials are
redacted, malformed answers are 502s that cost nothing, a broken stream event ends the stream
with an error event in the route's own shape, and text that is not Unicode never fails an
answer after it was billed. DynamoDB Local and loopback vendor fakes behind the real handlers."""

from __future__ import annotations

import json

import pytest

from aigw import clock
from aigw.usage import records as usage_records
from tests.helpers import ledger
from tests.helpers.apigw import Reply, call
from tests.helpers.fake_vendors import (
    Answer,
    VendorScript,
    VendorServer,
    anthropic_error,
    eventstream_message,
    gemini_error,
    json_answer,
    openai_error,
    sse,
)
from tests.helpers.prompt_apis import create, move

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
UPSTREAM_KEY = "sk-UPSTREAM-1234567890abcdefghij"


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _body(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100, **extra}


def _nothing_held() -> None:
    ledger.assert_agrees("acme")  # leases handed back: counters equal records, nothing held


# ---- credentials echoed by a vendor ---------------------------------------------------------


@pytest.fixture
def echoing(vendors: VendorServer, monkeypatch: pytest.MonkeyPatch) -> VendorServer:
    """The OpenAI fake is configured with a realistic key; Anthropic's key looks like nothing."""
    from tests.conftest import reset_core

    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plain-words-secret")
    reset_core()
    return vendors


def _leaks(reply: Reply) -> list[str]:
    return [s for s in (UPSTREAM_KEY, "UPSTREAM-1234", "plain-words-secret", "AIzaSy") if s in reply.body]


@pytest.mark.parametrize(
    ("model", "failure"),
    [
        ("openai/gpt-4o-mini", openai_error(401, f"Incorrect API key provided: Bearer {UPSTREAM_KEY}.")),
        ("openai/gpt-4o-mini", openai_error(400, f"bad request, sent headers: authorization={UPSTREAM_KEY}")),
        ("openai/gpt-4o-mini", openai_error(500, "upstream saw key AIzaSyA1234567890abcdefghijklmnopqrstu")),
        (
            "anthropic/claude-haiku-4-5",
            anthropic_error(401, "authentication_error", "bad x-api-key plain-words-secret"),
        ),
        (
            "gemini/gemini-2.5-flash",
            gemini_error(400, f"API key {UPSTREAM_KEY} not valid", "INVALID_ARGUMENT"),
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_vendor_errors_echoing_credentials_are_redacted(
    echoing: VendorServer, key: str, model: str, failure: Answer, stream: bool
) -> None:
    echoing.reset(VendorScript(failures=[failure] * 5))
    reply = call("POST", CHAT, body=_body(model, stream=stream), key=key)
    assert reply.status in (400, 502), reply.body
    assert _leaks(reply) == [], reply.body
    assert "[redacted]" in reply.json()["error"]["message"]
    anthropic = call("POST", MESSAGES, body=_body(model, stream=stream), key=key)
    assert _leaks(anthropic) == [], anthropic.body


def test_an_error_event_mid_stream_echoing_the_key_is_redacted(echoing: VendorServer, key: str) -> None:
    events = [
        sse({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}),
        sse({"error": {"message": f"stream aborted for Bearer {UPSTREAM_KEY}", "type": "server_error"}}),
    ]  # fmt: skip
    echoing.reset(VendorScript(failures=[Answer(content_type="text/event-stream", events=events)]))
    reply = call("POST", CHAT, body=_body("openai/gpt-4o-mini", stream=True), key=key)
    assert reply.status == 200
    assert _leaks(reply) == [], reply.body
    assert '"error"' in reply.body


def test_a_prompt_api_answer_never_carries_the_vendors_key(echoing: VendorServer, key: str) -> None:
    assert create(key, model="openai/gpt-4o-mini").status == 201
    assert move(key, "summarize", "published").status == 200
    echoing.reset(VendorScript(failures=[openai_error(401, f"Bearer {UPSTREAM_KEY} is revoked")] * 5))
    reply = call("POST", "/apis/summarize", body={"text": "hello"}, key=key)
    assert reply.status == 502
    assert _leaks(reply) == [], reply.body


# ---- malformed answers ----------------------------------------------------------------------

NO_CHOICES = json_answer({"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m"})


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        ("openai/gpt-4o-mini", NO_CHOICES),
        ("openai/gpt-4o-mini", json_answer({"id": "x", "choices": [], "usage": {"prompt_tokens": 5}})),
        ("openai/gpt-4o-mini", json_answer({"choices": [{"message": "not an object"}]})),
        (
            "openai/gpt-4o-mini",
            json_answer({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}}),
        ),
        ("openai/gpt-4o-mini", json_answer(["not", "an", "object"])),
        ("openai/gpt-4o-mini", Answer(body=b"<html>502 Bad Gateway</html>")),
        ("mistral/mistral-small-latest", NO_CHOICES),
        ("anthropic/claude-haiku-4-5", json_answer({"type": "message", "usage": {"input_tokens": 3}})),
        ("anthropic/claude-haiku-4-5", json_answer({"type": "message", "content": [1, 2]})),
        ("gemini/gemini-2.5-flash", json_answer([{"candidates": []}])),
        ("gemini/gemini-2.5-flash", json_answer({"candidates": "none", "usageMetadata": {}})),
    ],
)
def test_a_malformed_vendor_answer_is_a_502_and_costs_nothing(
    vendors: VendorServer, key: str, model: str, answer: Answer
) -> None:
    vendors.reset(VendorScript(failures=[answer]))
    reply = call("POST", CHAT, body=_body(model), key=key)
    assert reply.status == 502, reply.body
    assert reply.json()["error"]["code"] == "upstream_malformed_response"
    (record,) = _records()
    assert (record.status, record.cost_micro_usd, record.usage_source) == (502, 0, "none")
    _nothing_held()


# ---- a broken event mid-stream --------------------------------------------------------------


def _openai_chunk(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return sse(
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    )


BROKEN_STREAMS: dict[str, list[bytes]] = {
    "openai/gpt-4o-mini": [_openai_chunk("Hello "), _openai_chunk("there "), b'data: {"choices": [{"de\n\n'],
    "mistral/mistral-small-latest": [_openai_chunk("Hello "), b"data: 42\n\n"],
    "anthropic/claude-haiku-4-5": [
        sse({"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 5}}}, "message_start"),
        sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello "}},
            "content_block_delta"),
        b"event: content_block_delta\ndata: {not json}\n\n",
    ],
    "gemini/gemini-2.5-flash": [
        sse({"candidates": [{"content": {"parts": [{"text": "Hello "}], "role": "model"}}]}),
        sse({"candidates": [{"content": {"parts": "not a list"}}]}),
    ],
    "bedrock/nova-lite": [
        eventstream_message("messageStart", {"role": "assistant"}),
        eventstream_message("contentBlockDelta", {"delta": {"text": "Hello "}, "contentBlockIndex": 0}),
        eventstream_message("contentBlockDelta", {"delta": {"text": "x"}, "contentBlockIndex": 0})[:-4]
        + b"\x00\x00\x00\x00",  # a frame whose checksum is wrong
    ],
}  # fmt: skip


def _broken(model: str) -> Answer:
    kind = "application/vnd.amazon.eventstream" if model.startswith("bedrock/") else "text/event-stream"
    return Answer(content_type=kind, events=BROKEN_STREAMS[model])


def _data_events(body: str) -> list[dict[str, object]]:
    lines = [line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


@pytest.mark.parametrize("model", list(BROKEN_STREAMS))
def test_a_malformed_event_mid_stream_ends_with_an_openai_error_event(
    vendors: VendorServer, key: str, model: str
) -> None:
    vendors.reset(VendorScript(failures=[_broken(model)]))
    reply = call("POST", CHAT, body=_body(model, stream=True), key=key)
    assert reply.status == 200
    events = _data_events(reply.body)
    assert "Hello" in "".join(str(e) for e in events[:-1]), reply.body  # what came before went out
    error = events[-1]["error"]
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_malformed_response")
    assert "[DONE]" not in reply.body
    (record,) = _records()  # billed as a stream cut short: the prompt and what was sent
    assert (record.status, record.usage_source) == (502, "estimate")
    assert record.completion_tokens > 0
    _nothing_held()


def test_a_malformed_event_mid_stream_ends_v1_messages_with_anthropics_error_event(
    vendors: VendorServer, key: str
) -> None:
    vendors.reset(VendorScript(failures=[_broken("openai/gpt-4o-mini")]))
    reply = call("POST", MESSAGES, body=_body("openai/gpt-4o-mini", stream=True), key=key)
    assert reply.status == 200
    blocks = [b for b in reply.body.strip().split("\n\n") if b]
    assert blocks[-1].startswith("event: error\n")
    last = json.loads(blocks[-1].split("data: ", 1)[1])
    assert last["type"] == "error"
    assert last["error"]["type"] == "overloaded_error"
    assert "message_stop" not in reply.body
    (record,) = _records()
    assert (record.status, record.usage_source) == (502, "estimate")


def test_a_malformed_event_mid_stream_ends_a_prompt_api_stream_with_its_error_event(
    vendors: VendorServer, key: str
) -> None:
    assert create(key, model="openai/gpt-4o-mini").status == 201
    vendors.reset(VendorScript(failures=[_broken("openai/gpt-4o-mini")]))
    reply = call("POST", "/apis/summarize", body={"text": "hello", "stream": True}, key=key)
    assert reply.status == 200
    events = _data_events(reply.body)
    assert events[0] == {"delta": "Hello "}
    problem = events[-1]["error"]
    assert isinstance(problem, dict)
    assert (problem["status"], problem["code"]) == (502, "upstream_malformed_response")
    assert "[DONE]" not in reply.body


# ---- text that is not Unicode ---------------------------------------------------------------


def test_a_lone_surrogate_from_the_vendor_becomes_a_replacement_character(
    vendors: VendorServer, key: str
) -> None:
    raw = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok \\ud800 end"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).replace("\\\\ud800", "\\ud800")
    for stream in (False, True):
        if stream:
            chunk = raw.replace('"chat.completion"', '"chat.completion.chunk"').replace(
                '"message"', '"delta"'
            )
            answer = Answer(
                content_type="text/event-stream", events=[f"data: {chunk}\n\n".encode(), b"data: [DONE]\n\n"]
            )
        else:
            answer = Answer(body=raw.encode())
        vendors.reset(VendorScript(failures=[answer]))
        reply = call("POST", CHAT, body=_body("openai/gpt-4o-mini", stream=stream), key=key)
        assert reply.status == 200, reply.body
        assert "ok \ufffd end" in json.dumps(
            json.loads(reply.body) if not stream else _data_events(reply.body), ensure_ascii=False
        )
    assert [r.status for r in _records()] == [200, 200]
    _nothing_held()
