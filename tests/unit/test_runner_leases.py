"""The local runner hands a worker's budget leases back when it goes idle and when it stops
(unlike a frozen Lambda container it can run while idle), so locally a team's counters equal its
usage records about a second after its last call."""

from __future__ import annotations

import json
import time

from aigw import keys, teams
from aigw.billing import account, plans, reclaim
from aigw_local import apigw
from aigw_local import template as tpl
from aigw_local.server import LEASE_IDLE_SECONDS, Gateway
from tests.helpers import ledger

BODY = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}


def _chat(gateway: Gateway, secret: str) -> int:
    request = apigw.HttpRequest(
        "POST",
        "/v1/chat/completions",
        "",
        [("Authorization", f"Bearer {secret}"), ("Content-Type", "application/json")],
        json.dumps(BODY).encode(),
        "127.0.0.1",
        "127.0.0.1:3000",
    )
    return gateway.dispatch(request).status


def _team() -> str:
    teams.create_team("acme")
    plans.put_plan("pro", plans.PlanSpec(monthly_tokens=100_000))
    account.assign_plan("acme", "pro")
    return keys.create_key("acme").secret


def test_an_idle_worker_hands_its_leases_back_after_about_a_second() -> None:
    secret = _team()
    gateway = Gateway(tpl.routes(tpl.load()))
    try:
        assert _chat(gateway, secret) == 200
        assert len(reclaim.active_leases("acme")) == 1
        deadline = time.monotonic() + LEASE_IDLE_SECONDS + 5
        while reclaim.active_leases("acme") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reclaim.active_leases("acme") == []
        ledger.assert_agrees("acme")
    finally:
        gateway.drain()


def test_a_stopping_worker_hands_its_leases_back() -> None:
    secret = _team()
    gateway = Gateway(tpl.routes(tpl.load()))
    assert _chat(gateway, secret) == 200
    gateway.drain()  # what a worker does when the runner stops
    assert reclaim.active_leases("acme") == []
    assert account.summary("acme").tokens_used > 0
