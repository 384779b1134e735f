"""Catalog overrides in DynamoDB through /admin/models and /admin/aliases (moto)."""

from __future__ import annotations

import pytest

from aigw import bootstrap, clock, keys, teams
from aigw.usage import records as usage_records
from tests.helpers.apigw import call

NEW_MODEL = {
    "id": "groq/qwen-3-32b",
    "provider": "groq",
    "upstream": "qwen/qwen3-32b",
    "context_window": 131072,
    "input_per_mtok": "0.29",
    "cached_input_per_mtok": "0.29",
    "output_per_mtok": "0.59",
}


@pytest.fixture
def admin() -> str:
    return bootstrap.bootstrap_admin().secret


@pytest.fixture
def member() -> str:
    teams.create_team("acme")
    return keys.create_key("acme").secret


def _model_ids(key: str) -> list[str]:
    return [m["id"] for m in call("GET", "/v1/models", key=key).json()["data"]]


def test_models_need_an_admin_key(member: str) -> None:
    assert call("PUT", "/admin/models", body=NEW_MODEL, key=member).status == 403
    assert call("GET", "/admin/models").status == 401


def test_an_added_model_is_listed_and_a_disabled_one_is_gone(admin: str, member: str) -> None:
    assert call("PUT", "/admin/models", body=NEW_MODEL, key=admin).status == 200
    assert "groq/qwen-3-32b" in _model_ids(member)
    assert call("DELETE", "/admin/models/openai/gpt-4o", key=admin).status == 200
    assert "openai/gpt-4o" not in _model_ids(member)
    reply = call(
        "POST",
        "/v1/chat/completions",
        body={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        key=member,
    )
    assert reply.status == 404
    listing = call("GET", "/admin/models", key=admin).json()
    sources = {m["id"]: m["source"] for m in listing["data"]}
    assert (sources["groq/qwen-3-32b"], sources["mock/echo"]) == ("override", "builtin")
    assert call("DELETE", "/admin/models/openai/gpt-4o/override", key=admin).status == 200
    assert "openai/gpt-4o" in _model_ids(member)


def test_price_override_changes_what_calls_cost(admin: str, member: str) -> None:
    echo = next(m for m in call("GET", "/admin/models", key=admin).json()["data"] if m["id"] == "mock/echo")
    echo.pop("source")
    assert (
        call(
            "PUT", "/admin/models", body={**echo, "input_per_mtok": "10", "output_per_mtok": "20"}, key=admin
        ).status
        == 200
    )
    call(
        "POST",
        "/v1/chat/completions",
        body={"model": "mock/echo", "messages": [{"role": "user", "content": "Hello"}]},
        key=member,
    )
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert record.cost_micro_usd == 10 * record.prompt_tokens + 20 * record.completion_tokens


def test_alias_override_points_at_a_chain(admin: str, member: str) -> None:
    reply = call(
        "PUT", "/admin/aliases/default", body={"targets": ["openai/gpt-4o-mini", "mock/echo"]}, key=admin
    )
    assert reply.json() == {"alias": "default", "targets": ["openai/gpt-4o-mini", "mock/echo"]}
    # No OpenAI key in unit tests: the first target fails as not configured, the chain answers.
    answer = call(
        "POST",
        "/v1/chat/completions",
        body={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
        key=member,
    )
    assert answer.status == 200
    assert answer.json()["choices"][0]["message"]["content"] == "Echo: hi"
    assert call("PUT", "/admin/aliases/x", body={"targets": ["nope/model"]}, key=admin).status == 400
    assert call("DELETE", "/admin/aliases/default", key=admin).status == 200
    assert call("DELETE", "/admin/aliases/default", key=admin).status == 404


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"id": "no-slash"}, "id"),
        ({"input_per_mtok": "-1"}, "input_per_mtok"),
        ({"context_window": 0}, "context_window"),
        ({"upstream": ""}, "upstream"),
        ({"provider": "acme"}, "provider"),
        ({"fallbacks": ["nope/x"]}, "fallbacks"),
    ],
)
def test_bad_model_entries_get_400_naming_the_field(
    admin: str, change: dict[str, object], param: str
) -> None:
    reply = call("PUT", "/admin/models", body={**NEW_MODEL, **change}, key=admin)
    assert reply.status == 400
    assert reply.json()["param"] == param
