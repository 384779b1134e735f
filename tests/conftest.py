"""Shared fixtures: a clean process-wide state for every test (settings, caches, clients)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from aigw import cache_settings, catalog, keys, providers, table, teams
from aigw.billing import account, held_leases, machine_payments, notifications, plans, stripe_links
from aigw.billing.config import billing_settings
from aigw.config import settings
from aigw_local.runner import PASSED_THROUGH
from tests.helpers import streams

# Records the AWS calls each function's handler makes (see tests/helpers/aws_calls.py).
pytest_plugins = ("tests.helpers.aws_calls",)

BILLING_ENV = (
    "DEFAULT_PLAN",
    "CHECKOUT_PLAN",
    "CREDITS_PLAN",
    "EVENT_BUS_NAME",
    "STRIPE_API_KEY",
    "STRIPE_API_BASE",
    "STRIPE_WEBHOOK_SECRET",
    "BILLING_LINK_SECRET",
    "PUBLIC_BASE_URL",
    "GRACE_PERIOD_SECONDS",
    "MPP_CHALLENGE_SECRET",
    "MPP_CHALLENGE_SECRET_ID",
    "MPP_CHALLENGE_SECONDS",
)
EVERYONE_PLAN = "everyone"


def reset_core() -> None:
    settings.cache_clear()
    billing_settings.cache_clear()
    table.reset()
    keys.clear_cache()
    providers.reset()
    catalog.clear_cache()
    plans.clear_cache()
    account.forget()
    held_leases.forget()
    stripe_links.reset()
    machine_payments.reset()
    notifications.reset()
    streams.forget()
    cache_settings.clear()


def give_everyone_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that are not about billing run as a deployment with an unlimited default plan."""
    plans.put_plan(EVERYONE_PLAN, plans.PlanSpec(name="Unlimited (tests)", unlimited=True))
    monkeypatch.setenv("DEFAULT_PLAN", EVERYONE_PLAN)
    reset_core()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name in ("DYNAMODB_ENDPOINT", *BILLING_ENV) or name.startswith(PASSED_THROUGH):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("TABLE_NAME", "aigw-test")
    # Retries back off for real in production; tests that look at the pauses patch clock.sleep.
    monkeypatch.setenv("UPSTREAM_RETRY_BASE_SECONDS", "0")
    reset_core()
    yield
    reset_core()


@pytest.fixture
def key() -> str:
    """The secret of a new key of team ``acme``, in whatever table the test runs against."""
    teams.create_team("acme")
    return keys.create_key("acme").secret


class FakeClock:
    """Time that moves only when a test moves it: ``aigw.clock``'s seconds, milliseconds and
    precise seconds together, so every bound measured in time can be checked without sleeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: float | None = None) -> None:
        from aigw import clock

        self.at = float(start if start is not None else clock.now_precise())
        monkeypatch.setattr(clock, "now", lambda: int(self.at))
        monkeypatch.setattr(clock, "now_ms", lambda: int(self.at * 1000))
        monkeypatch.setattr(clock, "now_precise", lambda: self.at)

    def advance(self, seconds: float) -> None:
        self.at += seconds

    def set(self, at: float) -> None:
        self.at = float(at)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch)
