"""POST /webhooks/stripe: Stripe events, verified with the stripe library, applied exactly once."""

from __future__ import annotations

import json
from typing import Any

import stripe
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import web
from aigw.billing import stripe_events
from aigw.billing.stripe_links import webhook_secret
from aigw.errors import InvalidRequest

logger = Logger(service="aigw-stripe-webhook")
app = web.resolver()
ROUTE = "/webhooks/stripe"


@app.post(ROUTE)
def receive() -> Response[str]:
    payload = app.current_event.body or ""
    signature = app.current_event.headers.get("Stripe-Signature")
    try:
        # The library's check, with its default tolerance (300 s) against replays.
        stripe.Webhook.construct_event(payload, signature, webhook_secret())
    except stripe.SignatureVerificationError as exc:
        raise InvalidRequest(
            "Stripe-Signature is missing, forged or too old",
            code="invalid_signature",
            param="Stripe-Signature",
        ) from exc
    except ValueError as exc:
        raise InvalidRequest("The body is not a Stripe event", code="invalid_event") from exc
    try:
        event = stripe_events.parse(json.loads(payload))
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="invalid_event") from exc
    outcome = stripe_events.process(event)
    logger.info("stripe event", extra={"event": event.id, "type": event.type, "outcome": outcome})
    return web.json_response({"received": True, "outcome": outcome})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, public_resources=frozenset({ROUTE}))
