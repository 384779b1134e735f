"""Billing links: /billing/portal and /billing/checkout open Stripe sessions and redirect there
(signed links from 402 answers, usable in a browser); /billing/return is where Stripe sends the
browser back (on to the portal's billing page); /billing/status shows a team its terms."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import billing, entitlements, web

logger = Logger(service="aigw-billing")
app = web.resolver()
PUBLIC = frozenset({"/billing/portal", "/billing/checkout", "/billing/return"})

Token = Annotated[str, Query(min_length=1, max_length=300)]


def _redirect(url: str) -> Response[str]:
    return Response(303, "text/plain", f"See {url}\n", headers={"Location": url, "Cache-Control": "no-store"})


@app.get("/billing/portal")
def portal(token: Token) -> Response[str]:
    state = entitlements.load(billing.verify_token(token))
    if state.customer_id is None:  # nothing to manage yet: buying a plan is the fix
        return _redirect(billing.open_checkout(state, None).url)
    return _redirect(billing.open_portal(state).url)


@app.get("/billing/checkout")
def checkout(token: Token, plan: Annotated[str | None, Query(max_length=200)] = None) -> Response[str]:
    state = entitlements.load(billing.verify_token(token))
    return _redirect(billing.open_checkout(state, plan).url)


@app.get(
    "/billing/return",
    responses={
        303: {
            "description": "Where Stripe sends the user back: on to the portal's billing page",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def returned(
    checkout: Annotated[str | None, Query(max_length=20)] = None,
    invoice: Annotated[str | None, Query(max_length=20)] = None,
) -> Response[str]:
    # Relative, so it stays under the stage or base path the browser came in through.
    said = {"success": "checkout=success", "cancel": "checkout=cancel"}.get(checkout or "")
    if said is None:
        said = "invoice=paid" if invoice == "paid" else "billing=updated"
    return _redirect(f"../portal?{said}#/billing")


@app.get("/billing/status")
def status() -> Response[str]:
    key = web.current_key(app)
    view = entitlements.summary(key.team_id)
    refusal = view.refusal_code
    links = {
        "portal": billing.portal_link(key.team_id) if view.customer_id else None,
        "checkout": billing.checkout_link(key.team_id, None),
        # What a 402 would offer now: the portal for payment problems, else Checkout.
        "fix": billing.fix_url(entitlements.load(key.team_id), refusal) if refusal else None,
    }
    return web.json_response({**view.model_dump(), "links": links})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, public_resources=PUBLIC)
