"""Output limits (issue 11, case 1): a caller cannot ask for more output than the model gives,
huge numbers are a 400 and not a 500, the catalog knows each model's limit, and the built-in
mock model honours the limit a call was admitted with. On moto."""

from __future__ import annotations

import json

import pytest

from aigw import bootstrap, clock
from aigw.billing import account, plans
from aigw.catalog import CATALOG_PK, catalog
from aigw.table import gateway_table
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.prompt_apis import design

CHAT = "/v1/chat/completions"
HUGE = 10**40
LONG = " ".join(f"word{i}" for i in range(200))


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _chat(key: str, **fields: object) -> tuple[int, dict[str, object]]:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hi"}], **fields}
    reply = call("POST", CHAT, raw_body=json.dumps(body), key=key)
    return reply.status, reply.json() if reply.body.startswith("{") else {}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", HUGE),
        ("max_tokens", 16_385),
        ("max_completion_tokens", HUGE),
        ("max_completion_tokens", 20_000),
    ],
)
def test_an_output_limit_above_the_models_is_a_400_naming_the_field(
    key: str, field: str, value: int, stream: bool
) -> None:
    status, body = _chat(key, **{field: value, "stream": stream})
    assert status == 400, body
    error = body["error"]
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (field, "max_tokens_too_large")
    assert "16384" in str(error["message"])  # mock/echo's own limit, so the caller can fix it
    assert _records() == []  # refused before anything was reserved
    assert account.summary("acme").tokens_reserved == 0


def test_the_models_own_limit_is_accepted(key: str) -> None:
    assert _chat(key, max_tokens=16_384)[0] == 200


def test_a_huge_max_tokens_on_v1_messages_is_a_400_in_anthropics_shape(key: str) -> None:
    body = {"model": "mock/echo", "max_tokens": HUGE, "messages": [{"role": "user", "content": "Hi"}]}
    reply = call("POST", "/v1/messages", raw_body=json.dumps(body), key=key)
    assert reply.status == 400, reply.body
    payload = reply.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in payload["error"]["message"]
    assert _records() == []


@pytest.mark.parametrize(("max_tokens", "status"), [(HUGE, 400), (20_000, 400), (16_384, 201)])
def test_a_prompt_api_cannot_pin_more_output_than_its_model_gives(
    key: str, max_tokens: int, status: int
) -> None:
    spec = design(sampling={"max_tokens": max_tokens})
    reply = call("POST", "/apis", raw_body=json.dumps(spec), key=key)
    assert reply.status == status, reply.body
    if status == 400:
        assert reply.json()["param"] == "sampling.max_tokens"


def test_mock_echo_stops_at_the_plans_default_limit(key: str) -> None:
    plans.put_plan("short", plans.PlanSpec(default_max_tokens=5, unlimited=True))
    account.assign_plan("acme", "short")
    status, body = _chat(key, messages=[{"role": "user", "content": LONG}])
    assert status == 200
    choice = body["choices"][0]  # type: ignore[index]
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 5  # type: ignore[index]
    streamed = call(
        "POST",
        CHAT,
        body={"model": "mock/echo", "messages": [{"role": "user", "content": LONG}], "stream": True},
        key=key,
    )
    assert '"finish_reason":"length"' in streamed.body
    assert all(r.completion_tokens <= 5 for r in _records())


def test_mock_echo_stops_at_the_callers_limit(key: str) -> None:
    status, body = _chat(key, messages=[{"role": "user", "content": LONG}], max_tokens=3)
    assert status == 200
    assert body["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
    assert body["usage"]["completion_tokens"] <= 3  # type: ignore[index]


# ---- the catalog ---------------------------------------------------------------------------


def test_every_builtin_model_has_an_output_limit_within_its_context() -> None:
    for model in catalog().all():
        assert 0 < model.max_output_tokens <= model.context_window, model.id
    assert catalog().resolve("openai/gpt-4o-mini").max_output_tokens == 16_384
    assert catalog().resolve("anthropic/claude-3-5-haiku").max_output_tokens == 8_192


@pytest.fixture
def admin() -> str:
    return bootstrap.bootstrap_admin().secret


ENTRY = {
    "id": "mock/short",
    "provider": "mock",
    "upstream": "echo",
    "context_window": 1000,
    "input_per_mtok": "1",
    "cached_input_per_mtok": "1",
    "output_per_mtok": "1",
}


def test_admins_set_a_models_output_limit_and_callers_are_held_to_it(admin: str, key: str) -> None:
    reply = call("PUT", "/admin/models", body={**ENTRY, "max_output_tokens": 50}, key=admin)
    assert reply.status == 200, reply.body
    assert reply.json()["max_output_tokens"] == 50
    listed = {m["id"]: m for m in call("GET", "/admin/models", key=admin).json()["data"]}
    assert listed["mock/short"]["max_output_tokens"] == 50
    assert _chat(key, model="mock/short", max_tokens=51)[0] == 400
    assert _chat(key, model="mock/short", max_tokens=50)[0] == 200


def test_an_override_without_a_limit_keeps_the_models_current_one(admin: str) -> None:
    gpt = catalog().resolve("openai/gpt-4o-mini").model_dump(mode="json", exclude={"max_output_tokens"})
    reply = call("PUT", "/admin/models", body={**gpt, "output_per_mtok": "0.70"}, key=admin)
    assert reply.status == 200, reply.body
    assert reply.json()["max_output_tokens"] == 16_384
    assert call("PUT", "/admin/models", body=ENTRY, key=admin).json()["max_output_tokens"] == 1000


def test_an_output_limit_above_the_context_window_is_a_400(admin: str) -> None:
    reply = call("PUT", "/admin/models", body={**ENTRY, "max_output_tokens": 1001}, key=admin)
    assert reply.status == 400
    assert reply.json()["param"] == "max_output_tokens"
    huge = call("PUT", "/admin/models", raw_body=json.dumps({**ENTRY, "max_output_tokens": HUGE}), key=admin)
    assert huge.status == 400


def test_an_override_stored_before_output_limits_keeps_the_builtin_limit() -> None:
    legacy = (
        catalog().resolve("anthropic/claude-3-5-haiku").model_dump(mode="json", exclude={"max_output_tokens"})
    )
    gateway_table().put({"pk": CATALOG_PK, "sk": "MODEL#anthropic/claude-3-5-haiku", "model": legacy})
    new = {**legacy, "id": "anthropic/claude-legacy"}
    gateway_table().put({"pk": CATALOG_PK, "sk": "MODEL#anthropic/claude-legacy", "model": new})
    from aigw.catalog import clear_cache

    clear_cache()
    assert catalog().resolve("anthropic/claude-3-5-haiku").max_output_tokens == 8_192
    assert catalog().resolve("anthropic/claude-legacy").max_output_tokens == 200_000  # its context
