"""Billing links and Stripe sessions: the URL in a 402 that fixes it.

A 402 carries a gateway link (``/billing/portal?token=...`` or
``/billing/checkout?token=...&plan=...``) in ``fix_url`` and the ``Link`` header, never in the
message text; opening it creates a Stripe Billing Portal session (update the card, resume,
renew) or a Checkout session (buy a plan or credits) and redirects. The link works in a
browser without an API key, so its token is what protects it:

- short-lived: ``BILLING_LINK_TTL_SECONDS`` (default one hour, at most a day), never longer
  than the key that obtained it;
- bound: an HMAC over team, purpose (``portal``, or ``checkout`` of one plan), the id of the
  key the link was issued to, the team's link generation and the expiry; altering any of them
  (or opening a portal token as a checkout) is refused;
- revocable: opening re-reads the key (revoked or expired: refused) and the team's link
  generation, which ``aigw billing revoke-links`` bumps to void every link issued so far.

Links are issued only to an authenticated key of the team (a 402 on its own call, or
``/billing/status``); see docs/billing.md "Billing links".
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from aigw import clock, keys, request_context
from aigw.billing import account
from aigw.billing.config import billing_settings
from aigw.billing.plans import Plan, cached_plan
from aigw.billing.rules import BillingState, Decision, RefusalCode
from aigw.errors import GatewayError, InvalidRequest, NotFound, PaymentRequired, UpstreamError

Purpose = Literal["portal", "checkout"]
_PURPOSES: frozenset[str] = frozenset({"portal", "checkout"})
_TAG = "aigw-billing-link/2"  # domain separation, and old-format links no longer verify
_UNBOUND = "-"  # no key obtained the link (issued outside a keyed request, e.g. by tooling)
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


# ---- tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkGrant:
    """What a billing link's token allows: one purpose, for one team, until ``expires_at``."""

    team_id: str
    purpose: Purpose
    plan_id: str | None  # checkout only; None: the team's current plan or CHECKOUT_PLAN
    key_id: str | None
    generation: int
    expires_at: int

    def fields(self) -> list[str]:
        """The token's parts before its signature, in order (the plan last: it may hold dots)."""
        parts = [
            self.team_id,
            self.purpose,
            self.key_id or _UNBOUND,
            str(self.generation),
            str(self.expires_at),
        ]
        return parts + ([self.plan_id or ""] if self.purpose == "checkout" else [])


def _sign(secret: str, grant: LinkGrant) -> str:
    message = "|".join([_TAG, *grant.fields()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:40]


def _grant_for(team_id: str, purpose: Purpose, plan_id: str | None, generation: int | None) -> LinkGrant:
    """A grant for the request's caller: bound to its key when the key is the team's."""
    now = clock.now()
    expires = now + billing_settings().link_ttl_seconds
    caller = request_context.caller()
    key_id = None
    if caller is not None and caller.team_id == team_id:
        key_id = caller.key_id
        if caller.expires_at is not None:
            expires = min(expires, caller.expires_at)  # a link never outlives its key
    if generation is None:
        generation = account.cached_state(team_id).link_gen
    return LinkGrant(
        team_id, purpose, plan_id if purpose == "checkout" else None, key_id, generation, expires
    )


def make_token(grant: LinkGrant) -> str | None:
    secret = link_secret()
    if secret is None:
        return None
    return ".".join([*grant.fields(), _sign(secret, grant)])


def _invalid(message: str, code: str = "invalid_billing_link") -> InvalidRequest:
    return InvalidRequest(message, code=code, param="token")


def read_token(token: str) -> LinkGrant:
    """The grant a token's signature vouches for, if it has not expired (no table read)."""
    secret = link_secret()
    parts = token.split(".")
    if secret is None or len(parts) < 6 or parts[1] not in _PURPOSES:
        raise _invalid("This billing link is malformed")
    team_id, purpose, key_id, generation, expires = parts[:5]
    extra, signature = parts[5:-1], parts[-1]
    if not (generation.isdigit() and expires.isdigit()) or bool(extra) != (purpose == "checkout"):
        raise _invalid("This billing link is malformed")
    plan_id = (".".join(extra) or None) if purpose == "checkout" else None
    grant = LinkGrant(
        team_id=team_id,
        purpose="portal" if purpose == "portal" else "checkout",
        plan_id=plan_id,
        key_id=None if key_id == _UNBOUND else key_id,
        generation=int(generation),
        expires_at=int(expires),
    )
    if not hmac.compare_digest(_sign(secret, grant), signature):
        raise _invalid("This billing link is not valid")
    if grant.expires_at <= clock.now():
        raise _invalid("This billing link has expired; ask the gateway for a new one", "expired_billing_link")
    return grant


@dataclass(frozen=True)
class Redeemed:
    grant: LinkGrant
    state: BillingState


def redeem(token: str, purpose: Purpose | None = None, plan_id: str | None = None) -> Redeemed:
    """The grant and the team's billing state, if ``token`` opens ``purpose`` (of ``plan_id``,
    when given) now: signature and expiry, then the key it was issued to (still active) and
    the team's link generation (not bumped since), both read afresh."""
    grant = read_token(token)
    if purpose is not None and grant.purpose != purpose:
        raise _invalid(f"This billing link opens the {grant.purpose}, not the {purpose}")
    if grant.purpose == "checkout" and plan_id is not None and plan_id != (grant.plan_id or ""):
        raise InvalidRequest(
            "This billing link is for another plan; ask the gateway for a link to this one",
            code="invalid_billing_link",
            param="plan",
        )
    if grant.key_id is not None:
        key = keys.find_key(grant.team_id, grant.key_id)
        if key is None or key.status() != "active":
            raise _invalid(
                "The API key this billing link was issued to is revoked or expired", "revoked_billing_link"
            )
    state = account.load(grant.team_id)
    if state.link_gen != grant.generation:
        raise _invalid(
            "This billing link has been revoked; ask the gateway for a new one", "revoked_billing_link"
        )
    return Redeemed(grant, state)


def verify_token(token: str, purpose: Purpose | None = None, plan_id: str | None = None) -> str:
    """The team a billing link opens ``purpose`` for (any purpose if None); every check of
    :func:`redeem`."""
    return redeem(token, purpose, plan_id).grant.team_id


def webhook_secret() -> str:
    cfg = billing_settings()
    return _secret(cfg.stripe_webhook_secret, cfg.stripe_webhook_secret_parameter, "Stripe webhook secret")


def _base_url() -> str:
    return billing_settings().public_base_url or request_context.base_url() or ""


def portal_link(team_id: str, *, generation: int | None = None) -> str | None:
    """A link to the team's Stripe billing portal, for the request's caller (see module doc)."""
    grant = _grant_for(team_id, "portal", None, generation)
    token = make_token(grant)
    return f"{_base_url()}/billing/portal?{urlencode({'token': token})}" if token else None


def checkout_link(team_id: str, plan_id: str | None, *, generation: int | None = None) -> str | None:
    """A link to Checkout for ``plan_id`` (None: the team's plan or ``CHECKOUT_PLAN``), for the
    request's caller; that plan only."""
    grant = _grant_for(team_id, "checkout", plan_id, generation)
    token = make_token(grant)
    if token is None:
        return None
    query = {"token": token, **({"plan": plan_id} if plan_id else {})}
    return f"{_base_url()}/billing/checkout?{urlencode(query)}"


def links_expire_at(team_id: str) -> int:
    """When links issued now to the request's caller expire."""
    return _grant_for(team_id, "portal", None, 0).expires_at


def fix_url(state: BillingState, code: str) -> str | None:
    gen = state.link_gen
    if code in _PORTAL_CODES and state.customer_id:
        return portal_link(state.team_id, generation=gen)
    if code == "credits_exhausted":
        plan_id = state.credit_plan_id or billing_settings().credits_plan
        return checkout_link(state.team_id, plan_id, generation=gen)
    return checkout_link(state.team_id, state.sub_plan_id or billing_settings().checkout_plan, generation=gen)


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
        # The link is a bearer token: only in these two places, never in the message text
        # (which SDKs print, log and show in tracebacks).
        extra["fix_url"] = url
        headers["Link"] = f'<{url}>; rel="payment"'
        headers["Cache-Control"] = "no-store"
        message = f"{message} The link to fix it is in fix_url and the Link header."
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
