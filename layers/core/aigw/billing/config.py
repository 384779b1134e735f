"""Billing settings, read once from the environment (kept apart from :mod:`aigw.config` so the
billing knobs live with the billing code)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from aigw.config import _int, _opt


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
    reservation_ttl_seconds: int

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
            # Longer than any model-calling function's Timeout: a hold older than this is dead.
            reservation_ttl_seconds=_int("RESERVATION_TTL_SECONDS", 600),
        )


@functools.cache
def billing_settings() -> BillingSettings:
    return BillingSettings.from_env()
