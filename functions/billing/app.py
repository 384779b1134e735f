"""Billing links: /billing/portal and /billing/checkout open Stripe sessions and redirect there
(short-lived signed links from 402 answers, usable in a browser); /billing/return is where
Stripe sends the browser back (on to the portal's billing page); /billing/status shows a team
its terms, and hands the calling key links of its own team, bound to that key."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import clock, web
from aigw.billing import account, stripe_links

logger = Logger(service="aigw-billing")
app = web.resolver()
PUBLIC = frozenset({"/billing/portal", "/billing/checkout", "/billing/return"})

Token = Annotated[str, Query(min_length=1, max_length=600)]


def _redirect(url: str) -> Response[str]:
    headers = {"Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return Response(303, "text/plain", f"See {url}\n", headers=headers)


@app.get("/billing/portal")
def portal(token: Token) -> Response[str]:
    state = stripe_links.redeem(token, "portal").state
    if state.customer_id is None:  # nothing to manage yet: buying a plan is the fix
        return _redirect(stripe_links.open_checkout(state, None).url)
    return _redirect(stripe_links.open_portal(state).url)


@app.get("/billing/checkout")
def checkout(token: Token, plan: Annotated[str | None, Query(max_length=200)] = None) -> Response[str]:
    link = stripe_links.redeem(token, "checkout", plan)
    return _redirect(stripe_links.open_checkout(link.state, link.grant.plan_id).url)


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
    # Any active key of a team sees its own team's billing and gets links for it, bound to
    # that key (revoking the key voids them) and short-lived: the same links a 402 on one of
    # its calls would carry. No key ever gets another team's links.
    key = web.current_key(app)
    view = account.summary(key.team_id)
    refusal = view.refusal_code
    links = {
        "portal": stripe_links.portal_link(key.team_id) if view.customer_id else None,
        "checkout": stripe_links.checkout_link(key.team_id, None),
        # What a 402 would offer now: the portal for payment problems, else Checkout.
        "fix": stripe_links.fix_url(account.load(key.team_id), refusal) if refusal else None,
        "expires_at": clock.iso(stripe_links.links_expire_at(key.team_id)),
    }
    return web.json_response({**view.model_dump(), "links": links}, headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, public_resources=PUBLIC)
