"""The local runner's billing defaults: a newcomer's demo team works with no Stripe at all."""

from __future__ import annotations

import pytest

from aigw_local import runner
from aigw_local import template as tpl
from tests.conftest import reset_core
from tests.helpers.apigw import call


def test_local_environment_has_a_default_plan_and_no_event_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    monkeypatch.delenv("DEFAULT_PLAN", raising=False)
    env = runner.local_environment(tpl.load(), table_name="tbl", endpoint="http://127.0.0.1:1")
    assert env["DEFAULT_PLAN"] == runner.LOCAL_DEFAULT_PLAN
    assert len(env["BILLING_LINK_SECRET"]) >= 32
    assert "EVENT_BUS_NAME" not in env  # locally notifications are logged, never sent to AWS
    assert "BILLING_LINK_SECRET_ID" not in env


def test_seeded_demo_team_can_call_the_mock_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_PLAN", runner.LOCAL_DEFAULT_PLAN)
    reset_core()
    demo = runner.seed_demo(None)
    reply = call(
        "POST",
        "/v1/chat/completions",
        body={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
        key=demo.team_key,
    )
    assert reply.status == 200
    assert int(reply.header("X-Billing-Quota-Tokens-Limit") or 0) == 5_000_000
