"""Billing settings, read once from the environment (kept apart from :mod:`aigw.config` so the
billing knobs live with the billing code)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from aigw.config import _float, _int, _opt


@dataclass(frozen=True)
class BillingSettings:
    default_plan: str | None
    grace_seconds: int
    checkout_plan: str | None
    credits_plan: str | None
    public_base_url: str | None
    event_bus_name: str | None
    stripe_api_key: str | None
    stripe_api_key_parameter: str | None
    stripe_api_base: str | None
    stripe_webhook_secret: str | None
    stripe_webhook_secret_parameter: str | None
    link_secret: str | None
    link_secret_id: str | None
    link_ttl_seconds: int
    plan_cache_seconds: int
    lease_seconds: int
    lease_grace_seconds: int
    entitlement_check_seconds: float
    entitlement_max_age_seconds: float
    lease_flush_seconds: int

    @classmethod
    def from_env(cls) -> BillingSettings:
        return cls(
            default_plan=_opt("DEFAULT_PLAN"),
            grace_seconds=_int("GRACE_PERIOD_SECONDS", 7 * 86_400),
            checkout_plan=_opt("CHECKOUT_PLAN"),
            credits_plan=_opt("CREDITS_PLAN"),
            public_base_url=(_opt("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            event_bus_name=_opt("EVENT_BUS_NAME"),
            stripe_api_key=_opt("STRIPE_API_KEY"),
            stripe_api_key_parameter=_opt("STRIPE_API_KEY_PARAMETER"),
            stripe_api_base=_opt("STRIPE_API_BASE"),
            stripe_webhook_secret=_opt("STRIPE_WEBHOOK_SECRET"),
            stripe_webhook_secret_parameter=_opt("STRIPE_WEBHOOK_SECRET_PARAMETER"),
            link_secret=_opt("BILLING_LINK_SECRET"),
            link_secret_id=_opt("BILLING_LINK_SECRET_ID"),
            # Billing links are bearer tokens: an hour by default, never more than a day.
            link_ttl_seconds=min(max(_int("BILLING_LINK_TTL_SECONDS", 3_600), 1), 86_400),
            plan_cache_seconds=_int("PLAN_CACHE_SECONDS", 30),
            # A budget lease admits calls for this long after its last renewal (decision 19) ...
            lease_seconds=_int("LEASE_SECONDS", 60),
            # ... and is reclaimed as dead this long after that. A call admitted just before the
            # end may run longer (up to the model functions' Timeout): if its container lives, it
            # charges that call itself, past the sequence the reclaim counted (decision 19).
            # Longer than any call admitted before a lease's expiry can run (the model functions'
            # Timeout, 300 s): a lease is never reclaimed under a call still running.
            lease_grace_seconds=_int("LEASE_GRACE_SECONDS", 310),
            # A container re-reads the entitlement after an answer once its view is this old,
            # and never admits on a view older than the maximum (cancellations bite within it).
            entitlement_check_seconds=_float("ENTITLEMENT_CHECK_SECONDS", 2.5),
            entitlement_max_age_seconds=_float("ENTITLEMENT_MAX_AGE_SECONDS", 5.0),
            # Consumption is handed to the team's counters at least this often by a busy lease.
            lease_flush_seconds=_int("LEASE_FLUSH_SECONDS", 30),
        )


@functools.cache
def billing_settings() -> BillingSettings:
    return BillingSettings.from_env()
