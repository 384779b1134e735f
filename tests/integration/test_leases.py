"""Reservations of calls that died between reserve and settle, on DynamoDB Local: released after
their expiry (by the sweeper Lambda or the team's next call), exactly once, and a settle that
arrives after the release charges the real usage once and releases nothing."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from aigw import clock, invocation, keys, teams
from aigw.billing import account, holds, meter, plans
from aigw.billing.config import billing_settings
from aigw.chat import ChatRequest, Usage
from aigw.table import gateway_table
from aigw.usage import records as usage_records
from aigw_local import template as tpl
from aigw_local.apigw import LambdaContext
from aigw_local.server import load_handler
from tests.conftest import reset_core
from tests.helpers.apigw import call

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 50}
USED = Usage(prompt_tokens=12, completion_tokens=8, total_tokens=20)


@pytest.fixture
def acme() -> str:
    teams.create_team("acme")
    plans.put_plan("pro", plans.PlanSpec(monthly_tokens=100_000))
    account.assign_plan("acme", "pro")
    return keys.create_key("acme").secret


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Move the clock past every reservation's expiry (as if the dead call's Lambda is long gone)."""

    def move() -> None:
        skipped = clock.now() + billing_settings().reservation_ttl_seconds + 1
        monkeypatch.setattr(clock, "now", lambda: skipped)

    return move


def _open(secret: str, request_id: str) -> meter.Meter:
    key = keys.authenticate(secret)
    model = invocation.resolve_model(key, "mock/echo")
    return meter.open_meter(key, model, ChatRequest.model_validate(HELLO), request_id=request_id, route=CHAT)


def _sweep() -> int:
    spec = next(f for f in tpl.functions(tpl.load()) if f.logical_id == "ReservationSweeperFunction")
    result = load_handler(spec)({"source": "aws.events"}, LambdaContext("ReservationSweeperFunction", 300))
    released: int = result["released"]
    return released


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


def _held(team: str = "acme") -> list[str]:
    item = gateway_table().get(f"TEAM#{team}", account.BILLING_SK, consistent=True)
    return [h.request_id for h in holds.holds(item)]


def test_a_dead_calls_reservation_is_released_after_its_expiry_then_a_late_settle_charges_once(
    acme: str, later: Callable[[], None]
) -> None:
    dead = _open(acme, "req-dead")
    assert dead.reservation is not None
    assert account.summary("acme").tokens_reserved == dead.reservation.tokens > 0
    assert _held() == ["req-dead"]

    assert _sweep() == 0  # still within its expiry: the call may be running
    later()
    assert _sweep() == 1
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (0, 0)
    assert _held() == []
    assert _sweep() == 0  # released once, never twice

    # The call was not dead after all: its settle arrives after the release.
    dead.settle(USED)
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (20, 0)  # charged once, nothing released again
    (record,) = _records()
    assert (record.request_id, record.total_tokens) == ("req-dead", 20)
    assert _sweep() == 0
    assert account.summary("acme").tokens_used == sum(r.total_tokens for r in _records())


def test_a_settled_call_leaves_nothing_to_release(acme: str, later: Callable[[], None]) -> None:
    meter = _open(acme, "req-ok")
    meter.settle(USED)
    assert _held() == []
    later()
    assert _sweep() == 0
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (20, 0)


def test_the_teams_next_call_releases_an_expired_credit_hold(
    acme: str, later: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEFAULT_PLAN")  # credits fund the calls of a team with no plan
    reset_core()
    account.assign_plan("acme", None)
    account.grant_credits("acme", 1_000_000)
    dead = _open(acme, "req-dead-credits")
    assert dead.reservation is not None
    assert dead.reservation.funding == "credits"
    held = account.summary("acme")
    assert held.credits_reserved_micro_usd == dead.reservation.cost > 0
    assert held.credits_micro_usd == 1_000_000 - dead.reservation.cost

    later()
    reply = call("POST", CHAT, body=HELLO, key=acme)  # no sweeper ran: the call itself releases
    assert reply.status == 200, reply.body
    assert _held() == []
    (record,) = _records()
    view = account.summary("acme")
    assert view.credits_reserved_micro_usd == 0
    assert view.credits_micro_usd == 1_000_000 - record.cost_micro_usd

    dead.settle(USED)  # a late settle after the release: its real cost, once
    late = next(r for r in _records() if r.request_id == "req-dead-credits")
    view = account.summary("acme")
    assert view.credits_micro_usd == 1_000_000 - record.cost_micro_usd - late.cost_micro_usd
    assert view.credits_reserved_micro_usd == 0


def test_release_and_settle_racing_each_other_count_every_call_once(
    acme: str, later: Callable[[], None]
) -> None:
    meters = [_open(acme, f"req-race-{n}") for n in range(24)]
    later()
    item = gateway_table().get("TEAM#acme", account.BILLING_SK, consistent=True)
    expired = {h.request_id: h for h in holds.expired(item, clock.now())}
    assert len(expired) == 24

    def release(meter: meter.Meter) -> bool:
        return holds.release("acme", expired[meter.request_id])

    def settle(meter: meter.Meter) -> usage_records.UsageRecord:
        return meter.settle(USED)

    with ThreadPoolExecutor(max_workers=16) as pool:
        # Interleaved: for half the calls the settle is sent first, for the others the release.
        releases, settles = [], []
        for n, meter in enumerate(meters):
            if n % 2:
                settles.append(pool.submit(settle, meter))
                releases.append(pool.submit(release, meter))
            else:
                releases.append(pool.submit(release, meter))
                settles.append(pool.submit(settle, meter))
        released = sum(f.result() for f in releases)
        for f in settles:
            f.result()
    view = account.summary("acme")
    records = _records()
    assert len(records) == 24
    assert view.tokens_used == sum(r.total_tokens for r in records) == 24 * 20
    assert view.tokens_reserved == 0  # every hold went exactly once: by its settle or its release
    assert 0 <= released <= 24
    assert _held() == []


def test_a_stale_or_repeated_release_changes_nothing(acme: str, later: Callable[[], None]) -> None:
    meter = _open(acme, "req-slow")
    later()
    item = gateway_table().get("TEAM#acme", account.BILLING_SK, consistent=True)
    (hold,) = holds.expired(item, clock.now())
    meter.settle(USED)  # the call settles just after the sweeper read the item
    assert holds.release("acme", hold) is False
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (20, 0)

    dead = _open(acme, "req-dead-twice")
    assert dead.reservation is not None
    item = gateway_table().get("TEAM#acme", account.BILLING_SK, consistent=True)
    (hold,) = holds.holds(item)
    assert holds.release("acme", hold) is True
    assert holds.release("acme", hold) is False
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (20, 0)
