"""POST /v1/chat/completions and GET /v1/models through the real handler, on moto."""

from __future__ import annotations

import json

import pytest

from aigw import clock, keys, teams
from aigw.usage import records as usage_records
from tests.helpers.apigw import call

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.fixture
def key() -> str:
    teams.create_team("acme")
    return keys.create_key("acme", name="test").secret


def _error(reply_json: dict[str, object]) -> dict[str, object]:
    error = reply_json["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_mock_model_answers_in_openai_shape(key: str) -> None:
    reply = call("POST", CHAT, body=HELLO, key=key)
    assert reply.status == 200
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock/echo"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Echo: Hello there"}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_each_call_writes_a_usage_record_with_tokens_and_cost(key: str) -> None:
    body = call("POST", CHAT, body=HELLO, key=key).json()
    day = clock.iso(clock.now())[:10]
    (record,) = usage_records.records_for_day("acme", day)
    assert record.model == "mock/echo"
    assert record.status == 200
    assert record.prompt_tokens == body["usage"]["prompt_tokens"]
    assert record.completion_tokens == body["usage"]["completion_tokens"]
    # mock/echo costs $1 / $2 per 1M tokens: micro-USD equal tokens weighted 1 and 2.
    assert record.cost_micro_usd == record.prompt_tokens + 2 * record.completion_tokens
    assert record.key_id.startswith("key_")
    assert record.latency_ms >= 0


def test_failed_calls_are_recorded_too(key: str) -> None:
    reply = call("POST", CHAT, body={**HELLO, "model": "openai/gpt-4o-mini"}, key=key)
    assert reply.status == 502  # no OpenAI key configured in this test
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert (record.status, record.error_code, record.cost_micro_usd) == (502, "provider_not_configured", 0)


def test_alias_resolves_and_answer_names_the_requested_model(key: str) -> None:
    body = call("POST", CHAT, body={**HELLO, "model": "default"}, key=key).json()
    assert body["model"] == "default"


@pytest.mark.parametrize(
    ("auth", "code"),
    [(None, "missing_api_key"), ("Bearer sk-aigw-nope", "invalid_api_key"), ("Token abc", "invalid_api_key")],
)
def test_bad_credentials_get_401(auth: str | None, code: str) -> None:
    headers = {"Authorization": auth} if auth else {}
    reply = call("POST", CHAT, body=HELLO, headers=headers)
    assert reply.status == 401
    assert _error(reply.json())["code"] == code
    assert reply.header("WWW-Authenticate") == 'Bearer realm="aigw"'


def test_401_comes_before_body_validation() -> None:
    reply = call("POST", CHAT, raw_body="{not json")
    assert reply.status == 401


def test_revoked_and_expired_keys_get_401(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = keys.create_key("acme", expires_at=clock.now() + 30)
    keys.revoke_key("acme", keys.authenticate(key).key_id)
    assert _error(call("POST", CHAT, body=HELLO, key=key).json())["code"] == "revoked_api_key"
    monkeypatch.setattr(clock, "now", lambda: issued.key.created_at + 31)
    reply = call("POST", CHAT, body=HELLO, key=issued.secret)
    assert (reply.status, _error(reply.json())["code"]) == (401, "expired_api_key")


def test_model_outside_allow_list_gets_403() -> None:
    teams.create_team("acme")
    secret = keys.create_key("acme", allowed_models=["openai/*"]).secret
    reply = call("POST", CHAT, body=HELLO, key=secret)
    assert reply.status == 403
    error = _error(reply.json())
    assert (error["code"], error["param"]) == ("model_not_allowed", "model")


def test_unknown_model_gets_404(key: str) -> None:
    reply = call("POST", CHAT, body={**HELLO, "model": "acme/gpt-17"}, key=key)
    assert reply.status == 404
    assert _error(reply.json())["code"] == "model_not_found"


def test_malformed_json_gets_400(key: str) -> None:
    reply = call("POST", CHAT, raw_body='{"model": "mock/echo", ', key=key)
    assert reply.status == 400
    assert _error(reply.json())["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "mock/echo", "messages": []}, "messages"),
        ({"model": "mock/echo", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({**HELLO, "temperature": 7}, "temperature"),
        ({**HELLO, "max_tokens": "lots"}, "max_tokens"),
    ],
)
def test_schema_violations_get_400_naming_the_field(key: str, body: dict[str, object], param: str) -> None:
    reply = call("POST", CHAT, body=body, key=key)
    assert reply.status == 400
    error = _error(reply.json())
    assert error["param"] == param
    assert param in str(error["message"])


def test_oversize_body_gets_413(key: str) -> None:
    huge = {**HELLO, "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    reply = call("POST", CHAT, raw_body=json.dumps(huge), key=key)
    assert reply.status == 413
    assert _error(reply.json())["code"] == "payload_too_large"


def test_invalid_utf8_body_gets_400(key: str) -> None:
    reply = call("POST", CHAT, raw_body=b'{"model": "mock/echo\xff\xfe"}', key=key)
    assert reply.status == 400
    assert _error(reply.json())["code"] == "invalid_encoding"


def test_form_content_type_is_still_read_as_json(key: str) -> None:
    reply = call(
        "POST", CHAT, body=HELLO, key=key, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status == 200


def test_models_lists_only_what_the_key_may_use(key: str) -> None:
    all_ids = [m["id"] for m in call("GET", "/v1/models", key=key).json()["data"]]
    assert "mock/echo" in all_ids
    assert "openai/gpt-4o-mini" in all_ids
    limited = keys.create_key("acme", allowed_models=["openai/gpt-4o*"]).secret
    body = call("GET", "/v1/models", key=limited).json()
    assert body["object"] == "list"
    expected = sorted(i for i in all_ids if i.startswith("openai/gpt-4o"))
    assert "openai/gpt-4o-mini" in expected
    assert "mock/echo" not in expected
    assert sorted(m["id"] for m in body["data"]) == expected
    assert all(m["object"] == "model" for m in body["data"])
