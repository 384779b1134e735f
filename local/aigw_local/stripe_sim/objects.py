"""Stripe objects as the API and webhooks carry them, for the simulator.

Every object has the fields Stripe's published fixtures give it (``openapi/fixtures3.json`` in
github.com/stripe/openapi), with values a test-mode account would have: ``null`` where a
feature is not used, ``livemode: false``. Events are labelled with the API version of the
``stripe`` library the gateway uses. ``tests/unit/test_stripe_simulator.py`` compares these
shapes with the fixtures and with the library's own classes.
"""

from __future__ import annotations

import copy
import secrets
import string
from typing import Any

import stripe

API_VERSION: str = stripe.api_version
_ALPHABET = string.ascii_letters + string.digits

Obj = dict[str, Any]

# Stripe's test cards: what each does when charged.
CARDS: dict[str, dict[str, str]] = {
    "4242424242424242": {"brand": "visa", "last4": "4242", "behaviour": "succeeds"},
    "4000000000000002": {"brand": "visa", "last4": "0002", "behaviour": "declined"},
    "4000002760003184": {"brand": "visa", "last4": "3184", "behaviour": "authenticate"},
}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _address() -> Obj:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def _automatic_tax(*, status: bool = False) -> Obj:
    tax: Obj = {"enabled": False, "liability": None}
    if status:
        tax.update(status=None, disabled_reason=None, provider=None)
    return tax


def customer(customer_id: str, *, email: str, name: str, created: int, metadata: Obj, clock: str) -> Obj:
    return {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": customer_id[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": clock,
    }


def clock_object(clock_id: str, *, frozen_time: int, created: int, status: str = "ready") -> Obj:
    return {
        "id": clock_id,
        "object": "test_helpers.test_clock",
        "created": created,
        "deletes_after": created + 30 * 86_400,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": "aigw local simulator",
        "status": status,
        "status_details": {},
    }


def product(product_id: str, *, name: str, created: int, price_id: str) -> Obj:
    return {
        "id": product_id,
        "object": "product",
        "active": True,
        "created": created,
        "default_price": price_id,
        "description": "Created by aigw's local Stripe simulator",
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(
    price_id: str, *, product_id: str, lookup_key: str, unit_amount: int, recurring: bool, created: int
) -> Obj:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": (
            {
                "interval": "month",
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
            if recurring
            else None
        ),
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def plan_of(p: Obj) -> Obj:
    """The legacy ``plan`` object Stripe still puts next to a recurring price."""
    recurring = p["recurring"] or {}
    return {
        "id": p["id"],
        "object": "plan",
        "active": True,
        "amount": p["unit_amount"],
        "amount_decimal": p["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": p["created"],
        "currency": "usd",
        "interval": recurring.get("interval", "month"),
        "interval_count": recurring.get("interval_count", 1),
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "product": p["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def payment_method(pm_id: str, *, number: str, customer_id: str | None, email: str, created: int) -> Obj:
    card = CARDS[number]
    return {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": _address(),
            "email": email,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card["brand"],
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "display_brand": card["brand"],
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "sim" + number[-8:],
            "funding": "credit",
            "generated_from": None,
            "last4": card["last4"],
            "networks": {"available": [card["brand"]], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": created,
        "customer": customer_id,
        "customer_account": None,
        "livemode": False,
        "metadata": {"aigw_sim_card": number},
        "type": "card",
    }


def checkout_session(
    session_id: str,
    *,
    params: Obj,
    line_price: Obj,
    url: str,
    created: int,
) -> Obj:
    mode = str(params.get("mode") or "payment")
    amount = int(line_price["unit_amount"]) * int(
        ((params.get("line_items") or [{}])[0]).get("quantity") or 1
    )
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": _automatic_tax(status=True),
        "billing_address_collection": None,
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": "usd",
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": params.get("customer"),
        "customer_account": None,
        "customer_creation": params.get("customer_creation")
        or ("always" if mode == "subscription" else None),
        "customer_details": None,
        "customer_email": params.get("customer_email"),
        "discounts": [],
        "expires_at": created + 86_400,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None
        if mode == "subscription"
        else {"enabled": False, "invoice_data": _empty_invoice_data()},
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": dict(params.get("metadata") or {}),
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always" if mode == "subscription" else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": params.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": url,
        "wallet_options": None,
    }


def _empty_invoice_data() -> Obj:
    return {
        "account_tax_ids": None,
        "custom_fields": None,
        "description": None,
        "footer": None,
        "issuer": None,
        "metadata": {},
        "rendering_options": None,
    }


def portal_session(
    session_id: str, *, customer_id: str, return_url: str | None, url: str, created: int
) -> Obj:
    return {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": "bpc_aigwLocalSimulator",
        "created": created,
        "customer": customer_id,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": url,
    }


def subscription_item(
    item_id: str, *, subscription_id: str, p: Obj, start: int, end: int, created: int
) -> Obj:
    return {
        "id": item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": plan_of(p),
        "price": p,
        "quantity": 1,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def subscription(
    sub_id: str,
    *,
    customer_id: str,
    item: Obj,
    metadata: Obj,
    status: str,
    created: int,
    default_payment_method: str | None,
    latest_invoice: str | None,
    clock: str | None,
) -> Obj:
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": item["current_period_start"],
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "flexible", "updated_at": created},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": default_payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [item],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "test_clock": clock,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def invoice(
    invoice_id: str,
    *,
    customer: Obj,
    sub: Obj,
    p: Obj,
    billing_reason: str,
    period_start: int,
    period_end: int,
    created: int,
) -> Obj:
    amount = int(p["unit_amount"])
    item = sub["items"]["data"][0]
    line = {
        "id": new_id("il_1"),
        "object": "line_item",
        "amount": amount,
        "currency": "usd",
        "description": f"1 × {p['lookup_key']} (at ${amount / 100:.2f} / month)",  # noqa: RUF001 - as Stripe writes it
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period_end, "start": period_start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": p["id"], "product": p["product"]},
            "type": "price_details",
            "unit_amount_decimal": p["unit_amount_decimal"],
        },
        "quantity": 1,
        "quantity_decimal": "1",
        "subscription": sub["id"],
        "subtotal": amount,
        "taxes": [],
    }
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "aigw local simulator",
        "account_tax_ids": None,
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": amount,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": _automatic_tax(status=True),
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": None,
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "test_clock": customer["test_clock"],
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def finalize(inv: Obj, at: int, *, number: str, hosted_url: str) -> None:
    inv["status"] = "open"
    inv["number"] = number
    inv["hosted_invoice_url"] = hosted_url
    inv["invoice_pdf"] = hosted_url + "/pdf"
    inv["effective_at"] = at
    inv["status_transitions"]["finalized_at"] = at
    inv["webhooks_delivered_at"] = at


def payment_intent(
    pi_id: str, *, amount: int, customer_id: str | None, pm_id: str | None, description: str, created: int
) -> Obj:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": "usd",
        "customer": customer_id,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pm_id,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_confirmation",
        "transfer_data": None,
        "transfer_group": None,
    }


def card_error(code: str, *, pm: Obj | None) -> Obj:
    messages = {
        "card_declined": "Your card was declined.",
        "authentication_required": "Your card was declined. This transaction requires authentication.",
        "payment_intent_authentication_failure": "We are unable to authenticate your payment method. Please "
        "choose a different payment method and try again.",
    }
    return {
        "code": code,
        "decline_code": "generic_decline" if code == "card_declined" else None,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": messages[code],
        "payment_method": pm,
        "type": "card_error" if code != "payment_intent_authentication_failure" else "invalid_request_error",
    }


def invoice_payment(payment_id: str, *, inv: Obj, pi_id: str, created: int, paid_at: int) -> Obj:
    return {
        "id": payment_id,
        "object": "invoice_payment",
        "amount_paid": inv["amount_due"],
        "amount_requested": inv["amount_due"],
        "created": created,
        "currency": "usd",
        "invoice": inv["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi_id, "type": "payment_intent"},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": paid_at},
    }


def event(
    event_type: str, obj: Obj, *, created: int, previous: Obj | None = None, request_id: str | None = None
) -> Obj:
    """An event carrying a snapshot of ``obj`` as it is now (the simulator's own ``_`` fields left out)."""
    data: Obj = {"object": {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}}
    if previous is not None:
        data["previous_attributes"] = copy.deepcopy(previous)
    return {
        "id": new_id("evt_1"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": None},
        "type": event_type,
    }
