"""A Stripe simulator for ``make dev`` without a ``STRIPE_API_KEY``.

The local runner serves it under ``/_stripe`` on its own port:

- ``/_stripe/v1/...``: the Stripe API calls the gateway makes (prices, Checkout and portal
  sessions, meter events). The runner points the core's ``stripe`` client here
  (``STRIPE_API_BASE`` and a simulator key), so ``/billing/checkout`` and ``/billing/portal``
  run their real code and redirect to the sessions' URLs;
- ``/_stripe/checkout/{id}``, ``/_stripe/portal/{id}``, ``/_stripe/invoice/{id}``: Checkout, the
  customer portal and the hosted invoice page, marked as simulated, where the user picks what
  happens (a test card that pays, is declined or asks for 3-D Secure; cancel; renew);
- ``/_stripe/``: customers, the webhook events sent, the gateway's notifications.

Each outcome sends the events Stripe sends for it (``account.py``), signed with the runner's
webhook secret, to the gateway's own ``POST /webhooks/stripe``: the real webhook code runs.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlencode

from aigw_local.apigw import HttpRequest, HttpResponse
from aigw_local.stripe_sim import pages
from aigw_local.stripe_sim.account import Account, Outcome, PlanInfo, PlanLookup, public
from aigw_local.stripe_sim.api import StripeApi
from aigw_local.stripe_sim.objects import CARDS
from aigw_local.stripe_sim.store import Store
from aigw_local.stripe_sim.webhooks import WebhookSender

PREFIX = "/_stripe"
__all__ = ["PREFIX", "PlanInfo", "Simulator", "gateway_plan"]


def gateway_plan(lookup_key: str) -> PlanInfo | None:
    """The gateway's plan of that id (the runner shares the gateway's table and environment)."""
    from aigw.billing import plans
    from aigw.errors import NotFound

    try:
        plan = plans.get_plan(lookup_key)
    except NotFound:
        return None
    credits = plan.credits_micro_usd // 10_000 if plan.kind == "credits" else None
    return PlanInfo(plan_id=plan.plan_id, name=plan.name or plan.plan_id, credits_cents=credits)


class Simulator:
    def __init__(
        self,
        store: Store,
        *,
        internal_base: str,
        api_key: str,
        webhook_secret: Callable[[], str],
        plans: PlanLookup = gateway_plan,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.account = Account(store, plans=plans)
        self.api = StripeApi(self.account, api_key=api_key, page_base=internal_base + PREFIX)
        self.webhooks = WebhookSender(
            store, url=internal_base + "/webhooks/stripe", secret=webhook_secret, log=log
        )

    def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path[len(PREFIX) :] or "/"
        if path.startswith("/v1/"):
            return self.api.handle(request, path)
        parts = [p for p in path.split("/") if p]
        form = (
            dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
            if request.method == "POST"
            else {}
        )
        query = dict(parse_qsl(request.query))
        try:
            if not parts and request.method == "GET":
                return _html(
                    pages.index(
                        self.account.store.all("customer"),
                        self.store.deliveries(),
                        self.store.notifications(),
                    )
                )
            if len(parts) == 2 and parts[0] == "checkout":
                return self._checkout(request, parts[1], form)
            if len(parts) == 2 and parts[0] == "portal":
                return self._portal(request, parts[1], form, query)
            if len(parts) == 2 and parts[0] == "invoice":
                return self._invoice(request, parts[1], form)
            if len(parts) == 3 and parts[0] == "events" and parts[2] == "resend" and request.method == "POST":
                self.webhooks.resend(parts[1])
                back = form.get("back", "")
                return _redirect(back if back.startswith(PREFIX + "/") else PREFIX + "/")
        except KeyError:
            pass
        return _html(pages.not_found(f"No simulated Stripe page at {request.path}"), status=404)

    # ---- pages ------------------------------------------------------------------------------------

    def _checkout(self, request: HttpRequest, session_id: str, form: dict[str, str]) -> HttpResponse:
        session = self.store.get(session_id)
        if session is None or session.get("object") != "checkout.session":
            raise KeyError(session_id)
        price = self.store.get(str(session["_price"])) or {}
        product = self.store.get(str(price.get("product")))
        if request.method != "POST":
            return _html(pages.checkout(session, price, product))
        card, email = form.get("card", ""), form.get("email", "")
        outcome = self.account.pay_checkout(
            session_id, card=card, email=email, authentication=form.get("authentication")
        )
        if outcome.needs_authentication:
            what = product["name"] if product else "this purchase"
            return _html(
                pages.authenticate(
                    request.path, {"card": card, "email": email}, session["amount_total"], what
                )
            )
        if outcome.error:
            return _html(
                pages.checkout(self.store.get(session_id) or session, price, product, error=outcome.error)
            )
        self._deliver(outcome)
        return _redirect(str(session["success_url"]))

    def _portal(
        self, request: HttpRequest, session_id: str, form: dict[str, str], query: dict[str, str]
    ) -> HttpResponse:
        session = self.store.get(session_id)
        if session is None or session.get("object") != "billing_portal.session":
            raise KeyError(session_id)
        customer_id = str(session["customer"])
        if request.method == "POST":
            outcome = self._portal_action(customer_id, form)
            self._deliver(outcome)
            done = (
                {"error": outcome.error}
                if outcome.error
                else {"notice": _NOTICES.get(form.get("action", ""), "Done.")}
            )
            return _redirect(f"{request.path}?{urlencode(done)}")
        view = self.account.customer_view(customer_id)
        team = view.customer.get("metadata", {}).get("team_id")
        return _html(
            pages.portal(
                public(session),
                view,
                self.store.deliveries(customer=customer_id, limit=20),
                self.store.notifications(team_id=team, limit=20) if team else [],
                notice=query.get("notice"),
                error=query.get("error"),
                back=request.path,
            )
        )

    def _portal_action(self, customer_id: str, form: dict[str, str]) -> Outcome:
        action = form.get("action", "")
        if action == "card":
            card = form.get("card", "")
            if card not in CARDS:
                return Outcome(error="Your card number is incorrect.")
            return self.account.update_card(customer_id, card=card)
        sub = self.store.get(form.get("subscription", ""))
        if sub is None or sub.get("object") != "subscription" or sub.get("customer") != customer_id:
            return Outcome(error="No such subscription for this customer.")
        if action == "renew":
            return self.account.renew(sub["id"])
        if action in ("cancel", "cancel_now"):
            return self.account.cancel(sub["id"], at_period_end=action == "cancel")
        if action == "keep":
            return self.account.keep(sub["id"])
        return Outcome(error=f"Unknown action '{action}'.")

    def _invoice(self, request: HttpRequest, invoice_id: str, form: dict[str, str]) -> HttpResponse:
        invoice = self.store.get(invoice_id)
        if invoice is None or invoice.get("object") != "invoice" or invoice.get("status") == "draft":
            raise KeyError(invoice_id)
        back = f"{_origin(request)}/billing/return?invoice=paid"
        portal = f"{_origin(request)}/portal#/billing"
        if request.method != "POST":
            return _html(pages.invoice(public(invoice), back=portal))
        card = form.get("card", "")
        outcome = self.account.pay_invoice(invoice_id, card=card, authentication=form.get("authentication"))
        if outcome.needs_authentication:
            what = f"invoice {invoice.get('number')}"
            return _html(pages.authenticate(request.path, {"card": card}, invoice["amount_remaining"], what))
        self._deliver(outcome)
        if outcome.error:
            return _html(
                pages.invoice(public(self.store.get(invoice_id) or invoice), back=portal, error=outcome.error)
            )
        return _redirect(back)

    def _deliver(self, outcome: Outcome) -> None:
        self.webhooks.send(outcome.events)


_NOTICES = {
    "card": "Payment method updated.",
    "renew": "The test clock moved to the end of the period: the subscription renewed.",
    "cancel": "The subscription will cancel at the end of the period.",
    "cancel_now": "The subscription is canceled.",
    "keep": "The subscription will renew.",
}


def _origin(request: HttpRequest) -> str:
    return f"http://{request.host}"


def _html(body: str, status: int = 200) -> HttpResponse:
    headers = [("Content-Type", "text/html; charset=utf-8"), *pages.SECURITY_HEADERS]
    return HttpResponse(status, headers, body.encode())


def _redirect(location: str) -> HttpResponse:
    safe = quote(location, safe=":/?#[]@!$&'()*+,;=%")
    return HttpResponse(303, [("Location", safe), ("Cache-Control", "no-store")], b"")
