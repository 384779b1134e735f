"""A lone surrogate (``"\\ud800"``) is valid JSON but not text: a 400 naming the field, before
anything is reserved or sent (issue 11, case 11: it was a 500 after a usage record with status
200 had been billed). On moto, through the real handlers."""

from __future__ import annotations

import json

import pytest

from aigw import clock
from aigw.billing import account
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.prompt_apis import design

LONE = "a\\ud800b"  # JSON text of a string holding an unpaired high surrogate


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _refused(reply_body: str) -> None:
    assert "Traceback" not in reply_body
    assert _records() == []
    assert account.summary("acme").tokens_reserved == 0


@pytest.mark.parametrize("stream", ["false", "true"])
@pytest.mark.parametrize(
    ("fragment", "param"),
    [
        ('"messages": [{"role": "user", "content": "' + LONE + '"}]', "messages.0.content"),
        (
            '"messages": [{"role": "user", "content": [{"type": "text", "text": "' + LONE + '"}]}]',
            "messages.0.content.0.text",
        ),
        ('"messages": [{"role": "user", "content": "hi"}], "user": "\\udfff"', "user"),
        ('"messages": [{"role": "user", "content": "hi"}], "metadata": {"k\\ud800": 1}', "metadata.k\ufffd"),
    ],
)
def test_chat_completions_refuse_a_lone_surrogate_naming_the_field(
    key: str, fragment: str, param: str, stream: str
) -> None:
    raw = '{"model": "mock/echo", "stream": ' + stream + ", " + fragment + "}"
    reply = call("POST", "/v1/chat/completions", raw_body=raw, key=key)
    assert reply.status == 400, reply.body
    error = json.loads(reply.body)["error"]
    assert (error["code"], error["param"]) == ("invalid_encoding", param)
    _refused(reply.body)


def test_v1_messages_refuses_a_lone_surrogate_in_anthropics_shape(key: str) -> None:
    raw = (
        '{"model": "mock/echo", "max_tokens": 10, "messages": [{"role": "user", "content": "' + LONE + '"}]}'
    )
    reply = call("POST", "/v1/messages", raw_body=raw, key=key)
    assert reply.status == 400
    body = reply.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "messages.0.content" in body["error"]["message"]
    _refused(reply.body)


def test_prompt_apis_refuse_a_lone_surrogate_in_a_design_and_in_a_call(key: str) -> None:
    spec = json.dumps(design(title="TITLE")).replace("TITLE", LONE)
    created = call("POST", "/apis", raw_body=spec, key=key)
    assert created.status == 400
    assert created.json()["param"] == "title"
    assert call("POST", "/apis", body=design(), key=key).status == 201
    called = call("POST", "/apis/summarize", raw_body='{"text": "' + LONE + '"}', key=key)
    assert called.status == 400
    assert (called.json()["param"], called.json()["code"]) == ("text", "invalid_encoding")
    _refused(called.body)


def test_paired_surrogates_and_escaped_text_are_fine(key: str) -> None:
    raw = (
        '{"model": "mock/echo", "messages": [{"role": "user", "content": "smile \\ud83d\\ude00 \\\\ud800"}]}'
    )
    reply = call("POST", "/v1/chat/completions", raw_body=raw, key=key)
    assert reply.status == 200, reply.body
    assert reply.json()["choices"][0]["message"]["content"] == "Echo: smile \U0001f600 \\ud800"
