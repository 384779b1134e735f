"""The checks of ``make smoke`` (see conftest.py): what a team does on its first day, through
the official SDKs, against a deployed gateway."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from tests.smoke.conftest import API_SLUG, Smoke

PROMPT_API = {
    "slug": API_SLUG,
    "title": "aigw smoke check",
    "description": "Created by make smoke; a private draft of the aigw-smoke team.",
    "model": "",
    "prompt": {"user": "Say {{word}}"},
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
}


def _openai(smoke: Smoke, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=smoke.url + "/v1", max_retries=2, timeout=120)


def _first_call(smoke: Smoke) -> openai.OpenAI:
    """A warm function may trust a team's billing state for a few seconds (KEY_CACHE_SECONDS):
    the plan assigned a moment ago may take that long to be seen."""
    client = _openai(smoke, smoke.team_key)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.models.list()
            return client
        except openai.APIStatusError as exc:
            if exc.status_code != 402 or time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_models_lists_the_model_the_checks_use(smoke: Smoke) -> None:
    ids = [m.id for m in _first_call(smoke).models.list().data]
    assert smoke.model in ids


def test_chat_completion(smoke: Smoke) -> None:
    reply = _first_call(smoke).chat.completions.create(
        model=smoke.model, messages=[{"role": "user", "content": "smoke check"}]
    )
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.total_tokens > 0


def test_streamed_chat_completion(smoke: Smoke) -> None:
    stream = _first_call(smoke).chat.completions.create(
        model=smoke.model,
        messages=[{"role": "user", "content": "one two three four five"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices]) > 1  # it streamed, not one buffered answer
    assert text
    assert chunks[-1].usage is not None


def test_anthropic_messages(smoke: Smoke) -> None:
    _first_call(smoke)
    claude = anthropic.Anthropic(api_key=smoke.team_key, base_url=smoke.url, max_retries=2, timeout=120)
    message = claude.messages.create(
        model=smoke.model, max_tokens=64, messages=[{"role": "user", "content": "smoke check"}]
    )
    assert message.content[0].type == "text"
    assert message.usage.output_tokens > 0
    with claude.messages.stream(
        model=smoke.model, max_tokens=64, messages=[{"role": "user", "content": "smoke check"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
    assert streamed


def test_prompt_api(smoke: Smoke) -> None:
    _first_call(smoke)
    design = {**PROMPT_API, "model": smoke.model}
    created = smoke.as_team("POST", "/apis", json=design)
    if created.status_code == 409:  # kept from an earlier run: save this run's design as a version
        version = {k: v for k, v in design.items() if k != "slug"}
        saved = smoke.as_team("POST", f"/apis/{API_SLUG}/versions", json=version)
        assert saved.status_code in (200, 201), saved.text
    else:
        assert created.status_code == 201, created.text
    called = smoke.as_team("POST", f"/apis/{API_SLUG}", json={"word": "cheese"})
    assert called.status_code == 200, called.text
    answer = called.json()
    assert "cheese" in str(answer["output"])
    assert answer["usage"]["total_tokens"] > 0


def _refusal(smoke: Smoke) -> openai.APIStatusError:
    client = _openai(smoke, smoke.unpaid_key)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.chat.completions.create(model=smoke.model, messages=[{"role": "user", "content": "smoke"}])
        except openai.APIStatusError as exc:
            # The plan was assigned a moment ago (see _first_call).
            if exc.code == "quota_exhausted" or time.monotonic() > deadline:
                return exc
        else:
            assert time.monotonic() < deadline, "a team whose plan has no tokens was served"
        time.sleep(1)


def test_a_team_without_tokens_gets_a_402_it_can_act_on(smoke: Smoke) -> None:
    refused = _refusal(smoke)
    assert refused.status_code == 402
    assert refused.code == "quota_exhausted"
    body = refused.response.json()
    assert body["type"] == "urn:aigw:problem:quota_exhausted"
    assert body["error"]["message"]
    if "fix_url" in body:  # when the gateway has Stripe configured
        assert body["fix_url"].startswith("http")


def test_a_wrong_key_is_refused(smoke: Smoke) -> None:
    client = openai.OpenAI(api_key="sk-aigw-not-a-real-key", base_url=smoke.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
