"""Billing links and Stripe sessions: the URL in a 402 that fixes it.

A 402 carries a gateway link signed for the team (``/billing/portal?token=...`` or
``/billing/checkout?token=...&plan=...``); opening it creates a Stripe Billing Portal session
(update the card, resume, renew) or a Checkout session (buy a plan or credits) and redirects.
The token is an HMAC over team and expiry, so the link works in a browser without an API key
and cannot be altered to open another team's billing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aigw import clock, request_context
from aigw.billing.config import billing_settings
from aigw.billing.plans import Plan, cached_plan
from aigw.billing.rules import BillingState, Decision, RefusalCode
from aigw.errors import GatewayError, InvalidRequest, NotFound, PaymentRequired, UpstreamError

_PORTAL_CODES = frozenset({"payment_failed", "subscription_paused", "quota_exhausted", "spend_cap_reached"})
_TITLES: dict[str, str] = {
    "payment_failed": "Payment failed",
    "subscription_inactive": "Subscription inactive",
    "subscription_paused": "Subscription paused",
    "no_subscription": "No subscription",
    "quota_exhausted": "Quota exhausted",
    "credits_exhausted": "Credits exhausted",
    "spend_cap_reached": "Spend cap reached",
}


class BillingNotConfigured(GatewayError):
    status = 503
    error_type = "api_error"
    title = "Billing not configured"
    default_code = "billing_not_configured"


def _secret(value: str | None, parameter: str | None, what: str) -> str:
    if value:
        return value
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        return parameters.get_parameter(parameter, decrypt=True, max_age=300)
    raise BillingNotConfigured(f"The {what} is not configured on this gateway")


def link_secret() -> str | None:
    """The key that signs billing links: env locally, Secrets Manager (generated at deploy) in AWS."""
    cfg = billing_settings()
    if cfg.link_secret:
        return cfg.link_secret
    if cfg.link_secret_id:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(cfg.link_secret_id, max_age=300))
    return None


def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:40]


def make_token(team_id: str, *, now: int | None = None) -> str | None:
    secret = link_secret()
    if secret is None:
        return None
    expires = (now if now is not None else clock.now()) + billing_settings().link_ttl_seconds
    message = f"{team_id}.{expires}"
    return f"{message}.{_sign(secret, message)}"


def verify_token(token: str) -> str:
    """The team a billing link was issued for; refuses altered or expired links."""
    secret = link_secret()
    team_id, _, rest = token.partition(".")
    expires, _, signature = rest.partition(".")
    if secret is None or not team_id or not expires.isdigit():
        raise InvalidRequest("This billing link is malformed", code="invalid_billing_link", param="token")
    if not hmac.compare_digest(_sign(secret, f"{team_id}.{expires}"), signature):
        raise InvalidRequest("This billing link is not valid", code="invalid_billing_link", param="token")
    if int(expires) <= clock.now():
        raise InvalidRequest("This billing link has expired", code="expired_billing_link", param="token")
    return team_id


def webhook_secret() -> str:
    cfg = billing_settings()
    return _secret(cfg.stripe_webhook_secret, cfg.stripe_webhook_secret_parameter, "Stripe webhook secret")


def _base_url() -> str:
    return billing_settings().public_base_url or request_context.base_url() or ""


def portal_link(team_id: str) -> str | None:
    token = make_token(team_id)
    return f"{_base_url()}/billing/portal?{urlencode({'token': token})}" if token else None


def checkout_link(team_id: str, plan_id: str | None) -> str | None:
    token = make_token(team_id)
    if token is None:
        return None
    query = {"token": token, **({"plan": plan_id} if plan_id else {})}
    return f"{_base_url()}/billing/checkout?{urlencode(query)}"


def fix_url(state: BillingState, code: str) -> str | None:
    if code in _PORTAL_CODES and state.customer_id:
        return portal_link(state.team_id)
    if code == "credits_exhausted":
        return checkout_link(state.team_id, state.credit_plan_id or billing_settings().credits_plan)
    return checkout_link(state.team_id, state.sub_plan_id or billing_settings().checkout_plan)


def payment_required(
    state: BillingState,
    code: RefusalCode,
    message: str,
    *,
    returns_at: int | None = None,
    needs_micro_usd: int | None = None,
) -> PaymentRequired:
    """The 402 for a refusal: a stable code, when access returns (if known), and a fix link."""
    url = fix_url(state, code)
    extra: dict[str, object] = {"team_id": state.team_id}
    headers: dict[str, str] = {}
    if returns_at is not None:
        extra["access_returns_at"] = clock.iso(returns_at)
        message = f"{message} Access returns at {clock.iso(returns_at)}."
    if url:
        extra["fix_url"] = url
        headers["Link"] = f'<{url}>; rel="payment"'
        message = f"{message} Fix it here: {url}"
    err = PaymentRequired(message, code=code, headers=headers, extra=extra)
    err.title = _TITLES.get(code, err.title)
    err.needs_micro_usd = needs_micro_usd
    return err


def refusal_error(state: BillingState, decision: Decision) -> PaymentRequired:
    assert decision.code is not None
    return payment_required(state, decision.code, decision.message, returns_at=decision.returns_at)


# ---- Stripe ----------------------------------------------------------------------------------


@functools.cache
def stripe_client() -> Any:
    """One Stripe client per container; ``STRIPE_API_BASE`` points it at a local fake in tests."""
    import stripe

    cfg = billing_settings()
    api_key = _secret(cfg.stripe_api_key, cfg.stripe_api_key_parameter, "Stripe API key")
    bases: dict[str, str] = {}
    if cfg.stripe_api_base:
        bases = {"api": cfg.stripe_api_base, "meter_events": cfg.stripe_api_base}
    return stripe.StripeClient(
        api_key,
        base_addresses=bases,  # type: ignore[arg-type]
        http_client=stripe.HTTPXClient(allow_sync_methods=True, timeout=20),
        max_network_retries=2,
    )


def _stripe_call(what: str, call: Any, params: dict[str, Any]) -> Any:
    import stripe

    try:
        return call(params)
    except stripe.StripeError as exc:
        raise UpstreamError(
            f"Stripe refused to {what}: {exc.user_message or exc}", code="stripe_error"
        ) from exc


@dataclass(frozen=True)
class Session:
    url: str


def return_url() -> str:
    return f"{_base_url()}/billing/return"


def open_portal(state: BillingState) -> Session:
    if not state.customer_id:
        raise NotFound("This team has no Stripe customer yet; buy a plan first", code="no_customer")
    client = stripe_client()
    session = _stripe_call(
        "open the billing portal",
        client.v1.billing_portal.sessions.create,
        {"customer": state.customer_id, "return_url": return_url()},
    )
    return Session(url=str(session.url))


def _price_id(plan: Plan) -> str:
    client = stripe_client()
    prices = _stripe_call(
        "look up the plan's price",
        client.v1.prices.list,
        {"lookup_keys": [plan.plan_id], "active": True, "limit": 1},
    )
    if not prices.data:
        raise NotFound(f"No active Stripe price has lookup_key '{plan.plan_id}'", code="price_not_found")
    return str(prices.data[0].id)


def open_checkout(state: BillingState, plan_id: str | None) -> Session:
    chosen = plan_id or state.sub_plan_id or billing_settings().checkout_plan
    if not chosen:
        raise InvalidRequest("Name the plan to buy", code="plan_required", param="plan")
    plan = cached_plan(chosen)
    if plan is None:
        raise NotFound(f"plan '{chosen}' does not exist", code="plan_not_found", param="plan")
    metadata = {"team_id": state.team_id, "aigw_plan": plan.plan_id}
    params: dict[str, Any] = {
        "line_items": [{"price": _price_id(plan), "quantity": 1}],
        "client_reference_id": state.team_id,
        "success_url": return_url() + "?checkout=success",
        "cancel_url": return_url() + "?checkout=cancel",
        "metadata": metadata,
    }
    if state.customer_id:
        params["customer"] = state.customer_id
    if plan.kind == "credits":
        params["mode"] = "payment"
        params["metadata"] = {**metadata, "aigw_credits_micro_usd": str(plan.credits_micro_usd)}
        if not state.customer_id:
            params["customer_creation"] = "always"
    else:
        params["mode"] = "subscription"
        params["subscription_data"] = {"metadata": metadata}
    session = _stripe_call("open checkout", stripe_client().v1.checkout.sessions.create, params)
    return Session(url=str(session.url))


def reset() -> None:
    stripe_client.cache_clear()
