"""What a newcomer meets first (issue 16): which models work here, and errors that say what to do."""

from __future__ import annotations

import pytest

from aigw import clock, keys
from aigw.usage import records as usage_records
from tests.conftest import reset_core
from tests.helpers.apigw import call

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def test_models_say_which_ones_this_gateway_can_call(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cards = {m["id"]: m for m in call("GET", "/v1/models", key=key).json()["data"]}
    assert cards["mock/echo"]["configured"] is True
    assert cards["openai/gpt-4o-mini"]["configured"] is False
    assert cards["anthropic/claude-haiku-4-5"]["configured"] is False
    assert cards["bedrock/nova-lite"]["configured"] is False  # no region, not in a Lambda

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("BEDROCK_REGION", "eu-west-1")
    reset_core()
    cards = {m["id"]: m for m in call("GET", "/v1/models", key=key).json()["data"]}
    assert cards["openai/gpt-4o-mini"]["configured"] is True
    assert cards["bedrock/nova-lite"]["configured"] is True
    assert cards["azure/gpt-4o-mini"]["configured"] is False  # a key of OpenAI's is not Azure's

    portal = {m["id"]: m for m in call("GET", "/me/models", key=key).json()["data"]}
    assert (portal["openai/gpt-4o"]["configured"], portal["groq/llama-3.1-8b-instant"]["configured"]) == (
        True,
        False,
    )


def test_an_alias_with_nothing_configured_names_the_missing_keys(key: str) -> None:
    reply = call("POST", CHAT, body={"model": "fast", "messages": HELLO}, key=key)
    assert reply.status == 502
    error = reply.json()["error"]
    assert (error["code"], error["param"]) == ("provider_not_configured", "model")
    for setting in ("GROQ_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        assert setting in error["message"]
    assert "groq/llama-3.1-8b-instant" in error["message"]
    # Nothing was attempted, so nothing was reserved or billed.
    assert usage_records.records_for_day("acme", clock.iso(clock.now())[:10]) == []


def test_an_alias_skips_targets_without_a_key(key: str) -> None:
    admin_reply = call("GET", "/v1/models", key=key)
    assert admin_reply.status == 200
    from aigw import catalog

    catalog.put_alias("quick", ["openai/gpt-4o-mini", "mock/echo"])
    reply = call("POST", CHAT, body={"model": "quick", "messages": HELLO}, key=key)
    assert reply.status == 200
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert record.model == "mock/echo"  # no failed attempt at OpenAI recorded first


def test_a_model_without_its_key_says_which_setting_is_missing(key: str) -> None:
    reply = call("POST", CHAT, body={"model": "openai/gpt-4o", "messages": HELLO}, key=key)
    assert reply.status == 502
    assert "OPENAI_API_KEY" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("asked", "meant"),
    [
        ("gpt-4o", "openai/gpt-4o"),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
        ("mock/ecko", "mock/echo"),
    ],
)
def test_an_unknown_model_suggests_the_id_that_exists(key: str, asked: str, meant: str) -> None:
    reply = call("POST", CHAT, body={"model": asked, "messages": HELLO}, key=key)
    assert reply.status == 404
    error = reply.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert f"'{meant}'" in error["message"]


def test_an_unknown_model_with_nothing_close_gets_no_guess(key: str) -> None:
    error = call("POST", CHAT, body={"model": "zzzz", "messages": HELLO}, key=key).json()["error"]
    assert "Did you mean" not in error["message"]
    assert "/v1/models" in error["message"]


def test_an_empty_body_names_the_missing_field(key: str) -> None:
    reply = call("POST", CHAT, raw_body="", key=key)
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["param"] == "model"
    assert "model" in error["message"]
    admin = keys.create_key("acme", role="admin").secret
    problem = call("POST", "/admin/teams", raw_body="", key=admin)
    assert problem.status == 400
    assert (problem.json()["param"], problem.json()["code"]) == ("body", "missing_body")


def test_stripe_sends_the_browser_back_to_the_portals_billing_page() -> None:
    for query, said in (
        ("?checkout=success", "checkout=success"),
        ("?checkout=cancel", "checkout=cancel"),
        ("?invoice=paid", "invoice=paid"),
        ("", "billing=updated"),
    ):
        reply = call("GET", "/billing/return" + query)
        assert reply.status == 303
        assert reply.header("Location") == f"../portal?{said}#/billing"


def test_billing_status_offers_the_fix_a_402_would(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_LINK_SECRET", "s" * 32)
    monkeypatch.setenv("CHECKOUT_PLAN", "pro")
    reset_core()
    assert call("GET", "/billing/status", key=key).json()["links"]["fix"] is None  # allowed

    monkeypatch.setenv("DEFAULT_PLAN", "")  # a deployment without a free tier: no_subscription
    reset_core()
    status = call("GET", "/billing/status", key=key).json()
    assert (status["allowed"], status["refusal_code"]) == (False, "no_subscription")
    refused = call("POST", CHAT, body={"model": "mock/echo", "messages": HELLO}, key=key)
    assert refused.status == 402
    fix = status["links"]["fix"]
    assert fix.split("?")[0] == refused.json()["fix_url"].split("?")[0]
    assert "plan=pro" in fix
