"""A plan's model allow-list: /v1/models lists what both the key and the plan allow, a call
to a model the plan excludes is 403 ``model_not_in_plan``, and an alias skips such targets."""

from __future__ import annotations

from aigw import catalog, clock, keys
from aigw.billing import account, plans
from aigw.table import gateway_table
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.unit.billing_fixtures import CHAT, acme_key, billing_env

__all__ = ["acme_key", "billing_env"]


def _listed(key: str) -> set[str]:
    reply = call("GET", "/v1/models", key=key)
    assert reply.status == 200, reply.body
    return {m["id"] for m in reply.json()["data"]}


def _chat(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def test_models_list_is_the_intersection_of_key_and_plan(acme_key: str) -> None:
    everything = _listed(acme_key)
    assert {"mock/echo", "openai/gpt-4o-mini"} <= everything

    plans.put_plan("mock-only", plans.PlanSpec(allowed_models=["mock/*"], unlimited=True))
    account.assign_plan("acme", "mock-only")
    in_plan = _listed(acme_key)
    assert in_plan == {m for m in everything if m.startswith("mock/")}
    assert "mock/echo" in in_plan

    narrow = keys.create_key("acme", name="narrow", allowed_models=["openai/*", "mock/echo"]).secret
    assert _listed(narrow) == {"mock/echo"}


def test_a_model_outside_the_plan_is_403_and_nothing_is_held(acme_key: str) -> None:
    plans.put_plan("mock-only", plans.PlanSpec(allowed_models=["mock/*"], monthly_tokens=100_000))
    account.assign_plan("acme", "mock-only")
    reply = call("POST", CHAT, body=_chat("openai/gpt-4o-mini"), key=acme_key)
    assert reply.status == 403
    error = reply.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_in_plan", "model")
    assert "mock-only" in error["message"]
    summary = account.summary("acme")
    assert (summary.tokens_used, summary.tokens_reserved) == (0, 0)
    assert usage_records.records_for_day("acme", clock.iso(clock.now())[:10]) == []  # refused before a meter
    assert call("POST", CHAT, body=_chat("mock/echo"), key=acme_key).status == 200


def test_a_plan_change_is_seen_before_a_refusal(acme_key: str) -> None:
    plans.put_plan("mock-only", plans.PlanSpec(allowed_models=["mock/*"], unlimited=True))
    plans.put_plan("all", plans.PlanSpec(unlimited=True))
    account.assign_plan("acme", "mock-only")
    assert call("POST", CHAT, body=_chat("mock/echo"), key=acme_key).status == 200  # warm cache
    # Another container upgrades the team; this one still caches the old plan.
    gateway_table().update(
        "TEAM#acme",
        account.BILLING_SK,
        expression="SET manual_plan_id = :p, rev = rev + :one",
        values={":p": "all", ":one": 1},
    )
    reply = call("POST", CHAT, body=_chat("groq/llama-3.1-8b-instant"), key=acme_key)
    # Admitted on the fresh view; no Groq key is configured, so the vendor step fails instead.
    assert reply.json()["error"]["code"] == "provider_not_configured"


def test_an_alias_skips_targets_the_plan_excludes(acme_key: str) -> None:
    catalog.put_alias("team-default", ["openai/gpt-4o-mini", "mock/echo"])
    plans.put_plan("mock-only", plans.PlanSpec(allowed_models=["mock/*"], unlimited=True))
    account.assign_plan("acme", "mock-only")
    reply = call("POST", CHAT, body=_chat("team-default"), key=acme_key)
    assert reply.status == 200, reply.body
    assert reply.json()["choices"][0]["message"]["content"] == "Echo: hi"
