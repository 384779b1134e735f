"""Budget leases on DynamoDB Local (decision 19): a container's slice of a team's budget, its
expiry, the reclaim of a dead container's lease (by the sweeper Lambda and by an admission about
to refuse), a container that was only slow, cancellation mid-slice, and the hot path's round
trips. Several Lambda containers are played in one process (``held_leases.as_container``); time is a
fake clock, so every bound is checked without sleeping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from aigw import clock, invocation, keys, request_context, teams
from aigw.billing import account, admission, held_leases, meter, plans, reclaim
from aigw.billing.admission import Estimate
from aigw.billing.config import billing_settings
from aigw.chat import ChatRequest, Usage
from aigw.errors import GatewayError
from aigw.table import gateway_table
from aigw_local import template as tpl
from aigw_local.apigw import LambdaContext
from aigw_local.server import load_handler
from tests.conftest import FakeClock, reset_core
from tests.helpers import ledger
from tests.helpers.apigw import call
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted, openai_completion, openai_upstream
from tests.helpers.stripe import WEBHOOK_SECRET, deliver, stripe_event

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 50}


@pytest.fixture
def acme() -> Iterator[str]:
    teams.create_team("acme")
    plans.put_plan("pro", plans.PlanSpec(monthly_tokens=100_000))
    account.assign_plan("acme", "pro")
    yield keys.create_key("acme").secret
    ledger.assert_agrees("acme")


def _life() -> int:
    cfg = billing_settings()
    return cfg.lease_seconds + cfg.lease_grace_seconds


def _sweep() -> int:
    spec = next(f for f in tpl.functions(tpl.load()) if f.logical_id == "ReservationSweeperFunction")
    result = load_handler(spec)({"source": "aws.events"}, LambdaContext("ReservationSweeperFunction", 300))
    reclaimed: int = result["reclaimed"]
    return reclaimed


def _chat(secret: str, body: dict[str, Any] = HELLO) -> str:
    """One call in this container: "ok" or the refusal's code."""
    key = keys.authenticate(secret)
    try:
        invocation.chat_completion(key, ChatRequest.model_validate(body), request_id=f"req-{clock.now_ms()}")
    except GatewayError as exc:
        return exc.code
    return "ok"


def _admit(secret: str, request_id: str) -> meter.Meter:
    """Admit a call and leave it in flight (its container may die before it ends)."""
    key = keys.authenticate(secret)
    terms = admission.terms_for(key)
    model = invocation.resolve_model(key, "mock/echo")
    estimate = Estimate.for_chat(ChatRequest.model_validate(HELLO))
    return meter.open_meter(terms, model, estimate, request_id=request_id, route=CHAT)


# ---- expiry ----------------------------------------------------------------------------------------


def test_a_lease_admits_until_it_expires_then_the_next_call_takes_a_new_one(
    acme: str, fake_clock: FakeClock
) -> None:
    assert _chat(acme) == "ok"
    (first,) = reclaim.active_leases("acme")
    assert first.expires_at == clock.now() + billing_settings().lease_seconds
    fake_clock.advance(billing_settings().lease_seconds + 1)  # idle past its expiry
    assert _chat(acme) == "ok"
    (second,) = reclaim.active_leases("acme")
    assert second.lease_id != first.lease_id  # the expired one was handed back, a new one taken
    assert {r.lease_id for r in ledger.records()} == {first.lease_id, second.lease_id}


def test_a_busy_lease_is_renewed_and_hands_its_usage_back_periodically(
    acme: str, fake_clock: FakeClock
) -> None:
    for _ in range(4):
        assert _chat(acme) == "ok"
        fake_clock.advance(20)  # a call every 20 s: past half its life, the lease is renewed
    (lease,) = reclaim.active_leases("acme")
    assert lease.expires_at > clock.now()
    view = account.summary("acme")
    assert view.tokens_used > 0  # handed back without the lease ending
    assert view.tokens_used <= sum(r.total_tokens for r in ledger.records())


# ---- dead containers -----------------------------------------------------------------------------------


def test_a_dead_containers_lease_is_reclaimed_by_the_sweeper_and_its_calls_are_charged_once(
    acme: str, fake_clock: FakeClock
) -> None:
    with held_leases.as_container(held_leases.Container()):
        for _ in range(3):
            assert _chat(acme) == "ok"
        # This container is frozen, then killed: it never hands anything back.
    view = account.summary("acme")
    assert view.tokens_used == 0
    assert view.tokens_reserved > 0  # its slice is parked
    assert _sweep() == 0  # not expired: it may only be idle
    fake_clock.advance(_life() + 1)
    assert _sweep() == 1
    view = account.summary("acme")
    assert view.tokens_reserved == 0
    assert view.tokens_used == sum(r.total_tokens for r in ledger.records()) > 0
    assert _sweep() == 0  # reclaimed once, never twice
    (reclaimed,) = reclaim.leases_of("acme")
    assert reclaimed.state == "reclaimed"


def test_a_container_that_dies_mid_call_loses_only_that_calls_record(
    acme: str, fake_clock: FakeClock
) -> None:
    with held_leases.as_container(held_leases.Container()):
        assert _chat(acme) == "ok"
        _admit(acme, "req-dying")  # killed while the vendor answers: no record, ever
    fake_clock.advance(_life() + 1)
    assert _sweep() == 1
    records = ledger.records()
    assert [r.lease_seq for r in records] == [1]
    view = account.summary("acme")
    assert (view.tokens_used, view.tokens_reserved) == (records[0].total_tokens, 0)


def test_budget_parked_in_a_dead_containers_slice_comes_back_after_the_lease_lifetime(
    fake_clock: FakeClock,
) -> None:
    teams.create_team("acme")
    plans.put_plan("tiny", plans.PlanSpec(monthly_tokens=100))
    account.assign_plan("acme", "tiny")
    secret = keys.create_key("acme").secret
    with held_leases.as_container(held_leases.Container()):
        _admit(secret, "req-parked")  # holds ~70 of the 100 tokens, then its container dies
    assert _chat(secret) == "quota_exhausted"  # parked: a 402 within the bound...
    fake_clock.advance(_life() - 2)
    assert _chat(secret) == "quota_exhausted"  # ...for at most the lease lifetime plus grace
    fake_clock.advance(3)
    # The admission about to refuse reclaims the dead lease first, then admits.
    assert _chat(secret) == "ok"
    ledger.assert_agrees("acme")


def test_a_container_that_was_only_slow_charges_its_late_calls_exactly_once(
    acme: str, fake_clock: FakeClock
) -> None:
    slow = held_leases.Container()
    with held_leases.as_container(slow):
        assert _chat(acme) == "ok"
        late = _admit(acme, "req-late")  # still running when its lease is taken for dead
    fake_clock.advance(_life() + 1)
    assert _sweep() == 1  # counts the first call from its record; the late one has none yet
    with held_leases.as_container(slow):
        late.settle(Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30))
        held_leases.return_all()
    records = ledger.records()
    assert sorted(r.lease_seq for r in records) == [1, 2]
    view = account.summary("acme")
    assert view.tokens_used == sum(r.total_tokens for r in records)  # the late call counted once
    assert view.tokens_reserved == 0


def test_a_container_whose_lease_was_reclaimed_under_a_long_call_serves_its_next_calls(
    acme: str, fake_clock: FakeClock
) -> None:
    # A call may run as long as the function's timeout; a lease reclaimed under it (a grace
    # shorter than that) must not leave the container refusing every later call, nor count the
    # calls the reclaim counted a second time.
    slow = held_leases.Container()
    with held_leases.as_container(slow):
        assert _chat(acme) == "ok"
        late = _admit(acme, "req-late")
    fake_clock.advance(_life() + 1)
    assert _sweep() == 1
    with held_leases.as_container(slow):
        late.settle(Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30))
        assert [_chat(acme) for _ in range(3)] == ["ok"] * 3
        held_leases.return_all()
    view = account.summary("acme")
    assert view.tokens_used == sum(r.total_tokens for r in ledger.records())
    assert view.tokens_reserved == 0


def test_a_lease_outlives_the_longest_call_before_it_may_be_reclaimed() -> None:
    function = next(f for f in tpl.functions(tpl.load()) if f.logical_id == "InvokeFunction")
    cfg = billing_settings()
    assert cfg.lease_grace_seconds > function.timeout


# ---- the entitlement ---------------------------------------------------------------------------------


@pytest.fixture
def subscribed(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("DEFAULT_PLAN", raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    reset_core()
    plans.put_plan("pro-monthly", plans.PlanSpec(monthly_tokens=1_000_000))
    teams.create_team("acme")
    secret = keys.create_key("acme").secret
    assert deliver(stripe_event("customer.subscription.created")).status == 200
    return secret


def test_a_cancelled_subscription_stops_new_calls_within_5_seconds_mid_slice(
    subscribed: str, fake_clock: FakeClock
) -> None:
    assert _chat(subscribed) == "ok"
    (lease,) = reclaim.active_leases("acme")
    assert lease.out.tokens > 10 * 73  # a slice for many more calls
    cancelled_at = clock.now_precise()
    assert deliver(stripe_event("customer.subscription.deleted", at=clock.now())).status == 200
    outcomes = []
    for _ in range(12):  # a call every half second
        fake_clock.advance(0.5)
        outcomes.append((clock.now_precise() - cancelled_at, _chat(subscribed)))
    refused = [at for at, outcome in outcomes if outcome != "ok"]
    assert refused
    assert refused[0] <= 5.0
    assert all(outcome == "subscription_inactive" for at, outcome in outcomes if at >= refused[0])
    ledger.assert_agrees("acme")  # the slice was handed back


def test_a_refused_team_is_refused_at_once_without_a_lease(subscribed: str) -> None:
    assert deliver(stripe_event("customer.subscription.deleted")).status == 200
    assert _chat(subscribed) == "subscription_inactive"
    assert reclaim.active_leases("acme") == []


# ---- round trips -------------------------------------------------------------------------------------


def test_a_warm_container_makes_no_dynamodb_request_before_the_vendor(
    acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    before_vendor: list[list[str]] = []

    def answer(request: Recorded) -> Scripted:
        before_vendor.append(list(seen))  # what the gateway asked DynamoDB before this call
        return openai_completion(request)

    with openai_upstream(answer, monkeypatch, timeout_seconds=5) as upstream:
        gateway_table().client.meta.events.register(
            "before-call.dynamodb", lambda model, **_: seen.append(model.name)
        )
        body = {**HELLO, "model": "openai/gpt-4o-mini", "max_tokens": 600}  # the fake writes 500
        for _ in range(5):
            seen.clear()
            assert call("POST", CHAT, body=body, key=acme).status == 200
        assert isinstance(upstream, FakeUpstream)
    assert before_vendor[0] != []  # the first call takes the lease (and reads what it must)
    assert before_vendor[1:] == [[]] * 4  # warm: the vendor is called before any DynamoDB request
    assert seen == ["PutItem"]  # after the answer: the usage record, one write


def test_a_busy_container_reads_its_caches_again_after_answers_never_before_the_vendor(
    acme: str, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    # A call every 3 s for a minute: past the TTL of every cache a call reads (key 5 s, the
    # team's cache setting 10 s, plans and catalog overrides 30 s) and the entitlement's 5 s.
    started, base = fake_clock.at, clock.monotonic()
    monkeypatch.setattr(clock, "monotonic", lambda: base + fake_clock.at - started)
    seen: list[str] = []
    before_vendor: list[list[str]] = []

    def answer(request: Recorded) -> Scripted:
        before_vendor.append(list(seen))
        return openai_completion(request)

    with openai_upstream(answer, monkeypatch, timeout_seconds=5):
        gateway_table().client.meta.events.register(
            "before-call.dynamodb", lambda model, **_: seen.append(model.name)
        )
        body = {**HELLO, "model": "openai/gpt-4o-mini", "max_tokens": 600}
        for _ in range(21):
            seen.clear()
            # As the runtime loop and the local runner serve a call: what it defers runs after.
            deferred = request_context.open_deferred()
            try:
                assert call("POST", CHAT, body=body, key=acme).status == 200
            finally:
                request_context.close_deferred()
            request_context.run_deferred(deferred)
            fake_clock.advance(3)
    assert before_vendor[0] != []
    assert before_vendor[1:] == [[]] * 20
    ledger.assert_agrees("acme")


def test_calls_in_flight_leave_the_teams_billing_item_as_it_was(acme: str) -> None:
    assert _chat(acme) == "ok"
    before = gateway_table().get("TEAM#acme", "BILLING", consistent=True)
    assert before is not None
    in_flight = [_admit(acme, f"req-{n}") for n in range(40)]  # 40 calls between vendor and answer
    after = gateway_table().get("TEAM#acme", "BILLING", consistent=True)
    assert after is not None
    assert set(after) == set(before)  # no attribute per call (no hold#...)
    assert len(json.dumps(after, default=str)) < 1024  # fixed-size, well under 1 KB
    for meter_ in in_flight:
        meter_.fail(GatewayError("cancelled"))
