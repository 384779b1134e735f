"""The official openai SDK, pointed at the local runner, as a user would use the gateway."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.conftest import Runner


def _client(runner: Runner, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(api_key=key or runner.team_key, base_url=runner.base_url + "/v1", max_retries=0)


def _aigw(runner: Runner, *args: str) -> dict[str, object]:
    return runner.cli_json(*args)


def test_mock_model_answers_the_sdk(runner: Runner) -> None:
    completion = _client(runner).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello, gateway"}]
    )
    assert completion.choices[0].message.content == "Echo: Hello, gateway"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    assert completion.model == "mock/echo"


def test_openai_model_goes_through_to_the_upstream(runner: Runner) -> None:
    completion = _client(runner).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=20
    )
    assert completion.choices[0].message.content == "Hello from the fake upstream"
    sent = runner.upstream.requests[-1].json()
    assert (sent["model"], sent["max_completion_tokens"]) == ("gpt-4o-mini", 20)


def test_models_list(runner: Runner) -> None:
    ids = {m.id for m in _client(runner).models.list()}
    assert {"mock/echo", "openai/gpt-4o-mini"} <= ids


def test_sdk_errors_carry_the_gateway_codes(runner: Runner) -> None:
    with pytest.raises(openai.AuthenticationError) as auth:
        _client(runner, "sk-aigw-wrong").chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "x"}]
        )
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        _client(runner).chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        _client(runner).chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "x"}], temperature=9
        )
    assert bad.value.param == "temperature"


def test_cli_created_key_works_until_revoked(runner: Runner) -> None:
    _aigw(runner, "teams", "create", "e2e-team", "--name", "E2E")
    key = _aigw(runner, "keys", "create", "--team", "e2e-team", "--models", "mock/*", "--expires", "1d")
    secret = str(key["secret"])
    client = _client(runner, secret)
    assert client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "a"}])
    _aigw(runner, "keys", "revoke", str(key["key_id"]), "--team", "e2e-team")
    with pytest.raises(openai.AuthenticationError) as revoked:
        client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "a"}])
    assert revoked.value.code == "revoked_api_key"


def test_curl_style_request_and_unknown_route(runner: Runner) -> None:
    reply = httpx.post(
        runner.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {runner.team_key}"},
        content=b'{"model": "mock/echo", "messages": [{"role": "user", "content": "curl"}]}',
    )
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "Echo: curl"
    assert httpx.get(runner.base_url + "/nowhere").status_code == 404
    too_big = httpx.post(
        runner.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {runner.team_key}"},
        content=b"x" * 2_000_000,
    )
    assert too_big.status_code == 413
