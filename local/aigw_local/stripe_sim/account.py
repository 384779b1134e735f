"""The simulated Stripe account: what each API call and each outcome a user picks does to its
objects, and which events Stripe sends for it, in the order it sends them.

Stripe does not promise an order for webhook events; the order here is the one Stripe's test
mode shows for each flow (``stripe listen``). The flows:

- **Checkout, subscription mode, paid**: ``customer.created``, ``payment_method.attached``,
  ``customer.updated``, ``customer.subscription.created`` (``incomplete``), ``invoice.created``,
  ``invoice.finalized``, ``payment_intent.created`` (``payment_intent.requires_action`` if the
  card asks for 3-D Secure), ``payment_intent.succeeded``, ``invoice_payment.paid``,
  ``invoice.paid``, ``invoice.payment_succeeded``, ``customer.subscription.updated``
  (``active``), ``checkout.session.completed``.
- **Checkout, payment mode (credits), paid**: ``customer.created``, ``payment_intent.created``,
  (``payment_intent.requires_action``), ``payment_intent.succeeded``,
  ``checkout.session.completed``.
- **Checkout, card declined or 3-D Secure failed**: Checkout shows the error on its page and
  stays open; nothing the gateway acts on is sent.
- **Portal, cancel** (at period end, Stripe's default): ``customer.subscription.updated`` with
  ``cancel_at_period_end``; **cancel now**: ``customer.subscription.deleted``; **don't cancel**:
  ``customer.subscription.updated``; **new card**: ``payment_method.attached``,
  ``customer.updated``, ``customer.subscription.updated``.
- **Renew** (a test clock advanced to the period's end): ``test_helpers.test_clock.advancing``,
  then ``customer.subscription.updated`` (next period), ``invoice.created``,
  ``invoice.finalized``, ``payment_intent.created`` and the payment: paid (``...succeeded``,
  ``invoice_payment.paid``, ``invoice.paid``, ``invoice.payment_succeeded``), declined
  (``payment_intent.payment_failed``, ``invoice.payment_failed``, the subscription
  ``past_due``) or needing 3-D Secure off-session (``payment_intent.requires_action``,
  ``invoice.payment_failed``, ``invoice.payment_action_required``, ``past_due``); a
  subscription set to cancel ends instead (``customer.subscription.deleted``); then
  ``test_helpers.test_clock.ready``.
- **Hosted invoice page, pay**: ``payment_intent.succeeded``, ``invoice_payment.paid``,
  ``invoice.paid``, ``invoice.payment_succeeded``, and ``customer.subscription.updated``
  (``active``) when that was the subscription's last open invoice.

Events of one flow carry the second it happened in; the next flow's events are at least one
second later (as a person's next click would be), since the gateway orders a subscription's
events by that second.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aigw_local.stripe_sim import objects as o
from aigw_local.stripe_sim.store import Store, Tx

Obj = dict[str, Any]
# Prices for plans the gateway knows but the simulated account has no price for yet, in cents.
DEFAULT_MONTHLY_CENTS = 2000
PlanLookup = Callable[[str], "PlanInfo | None"]


@dataclass(frozen=True)
class PlanInfo:
    """What the simulator needs of a gateway plan to offer a price for it."""

    plan_id: str
    name: str
    credits_cents: int | None  # a credit pack's price; None: a monthly subscription


class StripeError(Exception):
    """An API error, answered in Stripe's error shape."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def body(self) -> Obj:
        error: Obj = {"type": "invalid_request_error", "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


@dataclass
class Outcome:
    """What a user's action did: the events to deliver, or why the payment did not go through."""

    events: list[Obj] = field(default_factory=list)
    error: str | None = None
    needs_authentication: bool = False
    customer: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.needs_authentication


def add_month(epoch: int) -> int:
    at = datetime.fromtimestamp(epoch, tz=UTC)
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    for day in (at.day, 30, 29, 28):
        try:
            return int(at.replace(year=year, month=month, day=day).timestamp())
        except ValueError:
            continue
    raise AssertionError("unreachable")


class Account:
    def __init__(self, store: Store, *, plans: PlanLookup) -> None:
        self.store = store
        self._plans = plans

    # ---- time -------------------------------------------------------------------------------

    def _tick(self, tx: Tx) -> int:
        """The second this flow happens in: now, and after the previous flow's."""
        meta = tx.get("simulator_meta") or {"id": "simulator_meta", "object": "simulator_meta", "last": 0}
        now = max(int(time.time()), int(meta["last"]) + 1)
        meta["last"] = now
        tx.put(meta)
        return now

    @staticmethod
    def _frozen(tx: Tx, customer: Obj, now: int) -> int:
        """The customer's test clock time (it only moves forward when advanced)."""
        clock = tx.get(customer["test_clock"]) if customer.get("test_clock") else None
        return max(now, int(clock["frozen_time"])) if clock else now

    # ---- prices -------------------------------------------------------------------------------

    def prices(self, lookup_keys: list[str]) -> list[Obj]:
        with self.store.transaction() as tx:
            known = {p["lookup_key"]: p for p in tx.all("price") if p["active"]}
            found = []
            for key in lookup_keys:
                price = known.get(key) or self._price_for_plan(tx, key)
                if price is not None:
                    found.append(price)
            return found

    def _price_for_plan(self, tx: Tx, lookup_key: str) -> Obj | None:
        """A price for a plan of the gateway, made the first time it is looked up: the
        simulated account has a price for every plan, as an operator would set it up."""
        plan = self._plans(lookup_key)
        if plan is None:
            return None
        now = int(time.time())
        price_id, product_id = o.new_id("price_1"), o.new_id("prod_", 14)
        recurring = plan.credits_cents is None
        amount = DEFAULT_MONTHLY_CENTS if recurring else int(plan.credits_cents or 0)
        tx.put(o.product(product_id, name=plan.name, created=now, price_id=price_id))
        return tx.put(
            o.price(
                price_id,
                product_id=product_id,
                lookup_key=lookup_key,
                unit_amount=amount,
                recurring=recurring,
                created=now,
            )
        )

    # ---- sessions -----------------------------------------------------------------------------

    def create_checkout_session(self, params: Obj, *, page_base: str) -> Obj:
        mode = params.get("mode")
        if mode not in ("payment", "subscription"):
            raise StripeError(400, "Missing required param: mode.", code="parameter_missing", param="mode")
        items = params.get("line_items")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise StripeError(
                400, "Missing required param: line_items.", code="parameter_missing", param="line_items"
            )
        if not params.get("success_url"):
            raise StripeError(
                400, "Missing required param: success_url.", code="parameter_missing", param="success_url"
            )
        with self.store.transaction() as tx:
            price = tx.get(str(items[0].get("price") or ""))
            if price is None or price.get("object") != "price":
                raise StripeError(
                    400,
                    f"No such price: '{items[0].get('price')}'",
                    code="resource_missing",
                    param="line_items[0][price]",
                )
            if mode == "subscription" and price["type"] != "recurring":
                raise StripeError(
                    400,
                    "You must provide at least one recurring price in `subscription` mode when using prices.",
                    param="line_items",
                )
            if mode == "payment" and price["type"] == "recurring":
                raise StripeError(
                    400,
                    "You specified `payment` mode but passed a recurring price. Either switch to "
                    "`subscription` mode or use only one-time prices.",
                    param="line_items",
                )
            if params.get("customer") and tx.get(str(params["customer"])) is None:
                raise StripeError(
                    400,
                    f"No such customer: '{params['customer']}'",
                    code="resource_missing",
                    param="customer",
                )
            session_id = "cs_test_a1" + o.new_id("", 56)
            session = o.checkout_session(
                session_id,
                params=params,
                line_price=price,
                url=f"{page_base}/checkout/{session_id}",
                created=int(time.time()),
            )
            self._remember_pages(tx, page_base)
            session["_subscription_metadata"] = dict(
                (params.get("subscription_data") or {}).get("metadata") or {}
            )
            session["_price"] = price["id"]
            tx.put(session)
            return public(session)

    def create_portal_session(self, params: Obj, *, page_base: str) -> Obj:
        customer_id = str(params.get("customer") or "")
        if not customer_id:
            raise StripeError(
                400, "Missing required param: customer.", code="parameter_missing", param="customer"
            )
        with self.store.transaction() as tx:
            if tx.get(customer_id) is None:
                raise StripeError(
                    400, f"No such customer: '{customer_id}'", code="resource_missing", param="customer"
                )
            self._remember_pages(tx, page_base)
            session_id = o.new_id("bps_1")
            session = o.portal_session(
                session_id,
                customer_id=customer_id,
                return_url=params.get("return_url"),
                url=f"{page_base}/portal/{session_id}",
                created=int(time.time()),
            )
            return public(tx.put(session))

    # ---- Checkout -------------------------------------------------------------------------------

    def pay_checkout(self, session_id: str, *, card: str, email: str, authentication: str | None) -> Outcome:
        """The customer submits the Checkout page with a test card (``authentication``: the
        3-D Secure step's answer, ``complete`` or ``fail``, once it was asked for)."""
        with self.store.transaction() as tx:
            session = tx.require(session_id)
            if session["status"] != "open":
                return Outcome(error="This Checkout Session is no longer open.")
            refused = _on_session_result(card, authentication)
            if refused is not None:
                return refused
            now = self._tick(tx)
            out = Outcome()
            customer = self._customer_for(tx, session, email=email, now=now, out=out)
            if session["mode"] == "subscription":
                self._start_subscription(
                    tx, session, customer, card=card, now=now, out=out, authenticated=authentication
                )
            else:
                self._pay_once(
                    tx, session, customer, card=card, now=now, out=out, authenticated=authentication
                )
            session.update(
                status="complete",
                payment_status="paid",
                customer=customer["id"],
                customer_details=_customer_details(customer),
            )
            tx.put(session)
            out.events.append(o.event("checkout.session.completed", session, created=now))
            return self._commit(tx, out, customer["id"])

    def _customer_for(self, tx: Tx, session: Obj, *, email: str, now: int, out: Outcome) -> Obj:
        if session.get("customer"):
            return tx.require(str(session["customer"]))
        customer_id = o.new_id("cus_", 14)
        clock_id = o.new_id("clock_1")
        tx.put(o.clock_object(clock_id, frozen_time=now, created=now))
        team = session.get("client_reference_id") or ""
        customer = o.customer(
            customer_id,
            email=email,
            name=str(team or "Simulated customer"),
            created=now,
            metadata={"team_id": team} if team else {},
            clock=clock_id,
        )
        tx.put(customer)
        out.events.append(o.event("customer.created", customer, created=now))
        return customer

    def _attach_card(self, tx: Tx, customer: Obj, card: str, now: int, out: Outcome) -> Obj:
        pm = o.payment_method(
            o.new_id("pm_1"), number=card, customer_id=customer["id"], email=customer["email"], created=now
        )
        tx.put(pm)
        out.events.append(o.event("payment_method.attached", pm, created=now))
        previous = {
            "invoice_settings": {
                "default_payment_method": customer["invoice_settings"]["default_payment_method"]
            }
        }
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
        tx.put(customer)
        out.events.append(o.event("customer.updated", customer, created=now, previous=previous))
        return pm

    def _start_subscription(
        self,
        tx: Tx,
        session: Obj,
        customer: Obj,
        *,
        card: str,
        now: int,
        out: Outcome,
        authenticated: str | None,
    ) -> None:
        price = tx.require(session_line_price(session))
        pm = self._attach_card(tx, customer, card, now, out)
        frozen = self._frozen(tx, customer, now)
        sub_id = o.new_id("sub_1")
        item = o.subscription_item(
            o.new_id("si_", 14),
            subscription_id=sub_id,
            p=price,
            start=frozen,
            end=add_month(frozen),
            created=now,
        )
        metadata = dict(session.get("_subscription_metadata") or {})
        sub = o.subscription(
            sub_id,
            customer_id=customer["id"],
            item=item,
            metadata=metadata,
            status="incomplete",
            created=frozen,
            default_payment_method=pm["id"],
            latest_invoice=None,
            clock=customer.get("test_clock"),
        )
        invoice = self._new_invoice(tx, customer, sub, price, "subscription_create", (frozen, frozen), now)
        sub["latest_invoice"] = invoice["id"]
        tx.put(sub)
        out.events.append(o.event("customer.subscription.created", sub, created=now))
        self._open_invoice(tx, customer, invoice, now, out)
        self._charge_invoice(
            tx, invoice, pm, now, out, authenticated=authenticated is not None, off_session=False
        )
        previous = {"status": "incomplete"}
        sub["status"] = "active"
        tx.put(sub)
        out.events.append(o.event("customer.subscription.updated", sub, created=now, previous=previous))
        session.update(subscription=sub_id, invoice=invoice["id"])

    def _pay_once(
        self,
        tx: Tx,
        session: Obj,
        customer: Obj,
        *,
        card: str,
        now: int,
        out: Outcome,
        authenticated: str | None,
    ) -> None:
        pm = o.payment_method(
            o.new_id("pm_1"), number=card, customer_id=customer["id"], email=customer["email"], created=now
        )
        tx.put(pm)
        intent = o.payment_intent(
            o.new_id("pi_3"),
            amount=int(session["amount_total"]),
            customer_id=customer["id"],
            pm_id=pm["id"],
            description="Checkout payment",
            created=now,
        )
        tx.put(intent)
        out.events.append(o.event("payment_intent.created", intent, created=now))
        if authenticated is not None:
            self._requires_action(tx, intent, now, out)
        self._succeed(tx, intent, now, out)
        session["payment_intent"] = intent["id"]

    # ---- invoices and payments ------------------------------------------------------------------

    def _new_invoice(
        self, tx: Tx, customer: Obj, sub: Obj, price: Obj, reason: str, period: tuple[int, int], now: int
    ) -> Obj:
        """An invoice (draft) for the subscription's current item period. Like Stripe's, its own
        ``period_start/end`` is the period that just ended (for a first invoice, its creation
        time twice); its line carries the period paid for in advance."""
        item = sub["items"]["data"][0]
        invoice = o.invoice(
            o.new_id("in_1"),
            customer=customer,
            sub=sub,
            p=price,
            billing_reason=reason,
            period_start=period[0],
            period_end=period[1],
            created=self._frozen(tx, customer, now),
        )
        invoice["lines"]["data"][0]["period"] = {
            "start": item["current_period_start"],
            "end": item["current_period_end"],
        }
        return tx.put(invoice)

    def _open_invoice(self, tx: Tx, customer: Obj, invoice: Obj, now: int, out: Outcome) -> None:
        out.events.append(o.event("invoice.created", invoice, created=now))
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        tx.put(customer)
        page_base = self._page_base(tx)
        o.finalize(
            invoice,
            self._frozen(tx, customer, now),
            number=number,
            hosted_url=f"{page_base}/invoice/{invoice['id']}",
        )
        tx.put(invoice)
        out.events.append(o.event("invoice.finalized", invoice, created=now))

    def _charge_invoice(
        self, tx: Tx, invoice: Obj, pm: Obj, now: int, out: Outcome, *, authenticated: bool, off_session: bool
    ) -> bool:
        """Try the invoice's payment with ``pm``; True if it was paid."""
        intent = o.payment_intent(
            o.new_id("pi_3"),
            amount=int(invoice["amount_due"]),
            customer_id=str(invoice["customer"]),
            pm_id=pm["id"],
            description="Subscription creation"
            if invoice["billing_reason"] == "subscription_create"
            else "Subscription update",
            created=now,
        )
        tx.put(intent)
        invoice["_payment_intent"] = intent["id"]
        out.events.append(o.event("payment_intent.created", intent, created=now))
        behaviour = o.CARDS[pm["metadata"]["aigw_sim_card"]]["behaviour"]
        if behaviour == "declined":
            self._fail(tx, intent, invoice, pm, "card_declined", now, out)
            return False
        if behaviour == "authenticate" and off_session:
            self._requires_action(tx, intent, now, out)
            self._invoice_failed(tx, invoice, now, out, action_required=True)
            return False
        if behaviour == "authenticate" and authenticated:
            self._requires_action(tx, intent, now, out)
        self._succeed(tx, intent, now, out)
        self._invoice_paid(tx, invoice, intent, now, out)
        return True

    def _requires_action(self, tx: Tx, intent: Obj, now: int, out: Outcome) -> None:
        intent.update(
            status="requires_action",
            next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}},
        )
        tx.put(intent)
        out.events.append(o.event("payment_intent.requires_action", intent, created=now))

    def _succeed(self, tx: Tx, intent: Obj, now: int, out: Outcome) -> None:
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            next_action=None,
            last_payment_error=None,
            latest_charge=o.new_id("ch_3"),
        )
        tx.put(intent)
        out.events.append(o.event("payment_intent.succeeded", intent, created=now))

    def _fail(
        self, tx: Tx, intent: Obj, invoice: Obj | None, pm: Obj, code: str, now: int, out: Outcome
    ) -> None:
        intent.update(
            status="requires_payment_method", last_payment_error=o.card_error(code, pm=pm), next_action=None
        )
        tx.put(intent)
        out.events.append(o.event("payment_intent.payment_failed", intent, created=now))
        if invoice is not None:
            self._invoice_failed(tx, invoice, now, out, action_required=False)

    def _invoice_failed(self, tx: Tx, invoice: Obj, now: int, out: Outcome, *, action_required: bool) -> None:
        frozen = self._frozen(tx, tx.require(str(invoice["customer"])), now)
        invoice.update(
            attempted=True,
            attempt_count=int(invoice["attempt_count"]) + 1,
            next_payment_attempt=frozen + 3 * 86_400,
        )
        tx.put(invoice)
        out.events.append(o.event("invoice.payment_failed", invoice, created=now))
        if action_required:
            out.events.append(o.event("invoice.payment_action_required", invoice, created=now))

    def _invoice_paid(self, tx: Tx, invoice: Obj, intent: Obj, now: int, out: Outcome) -> None:
        frozen = self._frozen(tx, tx.require(str(invoice["customer"])), now)
        payment = o.invoice_payment(
            o.new_id("inpay_1"), inv=invoice, pi_id=intent["id"], created=now, paid_at=frozen
        )
        tx.put(payment)
        out.events.append(o.event("invoice_payment.paid", payment, created=now))
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            attempted=True,
            attempt_count=int(invoice["attempt_count"]) + 1,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = frozen
        tx.put(invoice)
        out.events.append(o.event("invoice.paid", invoice, created=now))
        out.events.append(o.event("invoice.payment_succeeded", invoice, created=now))

    # ---- the hosted invoice page ------------------------------------------------------------------

    def pay_invoice(self, invoice_id: str, *, card: str, authentication: str | None) -> Outcome:
        with self.store.transaction() as tx:
            invoice = tx.require(invoice_id)
            if invoice["status"] != "open":
                return Outcome(error=f"This invoice is {invoice['status']}: there is nothing to pay.")
            refused = _on_session_result(card, authentication)
            if refused is not None and (refused.needs_authentication or card not in o.CARDS):
                return refused
            customer = tx.require(str(invoice["customer"]))
            now = self._tick(tx)
            out = Outcome()
            pm = o.payment_method(
                o.new_id("pm_1"),
                number=card,
                customer_id=customer["id"],
                email=customer["email"],
                created=now,
            )
            tx.put(pm)
            intent = tx.get(str(invoice.get("_payment_intent") or ""))
            if intent is None:
                intent = o.payment_intent(
                    o.new_id("pi_3"),
                    amount=int(invoice["amount_due"]),
                    customer_id=customer["id"],
                    pm_id=pm["id"],
                    description="Invoice payment",
                    created=now,
                )
                invoice["_payment_intent"] = intent["id"]
                out.events.append(o.event("payment_intent.created", intent, created=now))
            intent["payment_method"] = pm["id"]
            if refused is not None:
                declined = o.CARDS[card]["behaviour"] == "declined"
                code = "card_declined" if declined else "payment_intent_authentication_failure"
                if not declined:
                    self._requires_action(tx, intent, now, out)
                self._fail(tx, intent, invoice, pm, code, now, out)
                out.error = refused.error
                return self._commit(tx, out, customer["id"])
            if authentication is not None:
                self._requires_action(tx, intent, now, out)
            self._succeed(tx, intent, now, out)
            self._invoice_paid(tx, invoice, intent, now, out)
            sub_id = _subscription_of(invoice)
            sub = tx.get(sub_id) if sub_id else None
            if (
                sub is not None
                and sub["status"] in ("past_due", "unpaid")
                and not self._open_invoices(tx, sub_id)
            ):
                previous = {"status": sub["status"]}
                sub["status"] = "active"
                tx.put(sub)
                out.events.append(
                    o.event("customer.subscription.updated", sub, created=now, previous=previous)
                )
            return self._commit(tx, out, customer["id"])

    # ---- the customer portal ----------------------------------------------------------------------

    def cancel(self, sub_id: str, *, at_period_end: bool) -> Outcome:
        with self.store.transaction() as tx:
            sub = tx.require(sub_id)
            if sub["status"] in ("canceled", "incomplete_expired"):
                return Outcome(error="This subscription has already ended.")
            now = self._tick(tx)
            out = Outcome()
            customer = tx.require(str(sub["customer"]))
            frozen = self._frozen(tx, customer, now)
            if at_period_end:
                previous = {
                    "cancel_at": sub["cancel_at"],
                    "cancel_at_period_end": sub["cancel_at_period_end"],
                    "canceled_at": sub["canceled_at"],
                    "cancellation_details": dict(sub["cancellation_details"]),
                }
                sub.update(
                    cancel_at=sub["items"]["data"][0]["current_period_end"],
                    cancel_at_period_end=True,
                    canceled_at=frozen,
                )
                sub["cancellation_details"]["reason"] = "cancellation_requested"
                tx.put(sub)
                out.events.append(
                    o.event("customer.subscription.updated", sub, created=now, previous=previous)
                )
            else:
                self._end(tx, sub, frozen, now, out)
            return self._commit(tx, out, customer["id"])

    def keep(self, sub_id: str) -> Outcome:
        """Undo a cancellation scheduled for the period's end ("Don't cancel")."""
        with self.store.transaction() as tx:
            sub = tx.require(sub_id)
            if not sub["cancel_at_period_end"] or sub["status"] == "canceled":
                return Outcome(error="This subscription is not set to cancel.")
            now = self._tick(tx)
            out = Outcome()
            previous = {
                "cancel_at": sub["cancel_at"],
                "cancel_at_period_end": True,
                "canceled_at": sub["canceled_at"],
                "cancellation_details": dict(sub["cancellation_details"]),
            }
            sub.update(cancel_at=None, cancel_at_period_end=False, canceled_at=None)
            sub["cancellation_details"]["reason"] = None
            tx.put(sub)
            out.events.append(o.event("customer.subscription.updated", sub, created=now, previous=previous))
            return self._commit(tx, out, str(sub["customer"]))

    def _end(self, tx: Tx, sub: Obj, at: int, now: int, out: Outcome) -> None:
        sub.update(status="canceled", ended_at=at, canceled_at=sub["canceled_at"] or at)
        sub["cancellation_details"]["reason"] = (
            sub["cancellation_details"]["reason"] or "cancellation_requested"
        )
        tx.put(sub)
        out.events.append(o.event("customer.subscription.deleted", sub, created=now))

    def update_card(self, customer_id: str, *, card: str) -> Outcome:
        with self.store.transaction() as tx:
            customer = tx.require(customer_id)
            now = self._tick(tx)
            out = Outcome()
            old = customer["invoice_settings"]["default_payment_method"]
            pm = self._attach_card(tx, customer, card, now, out)
            for sub in self._subscriptions(tx, customer_id):
                if sub["status"] in ("canceled", "incomplete_expired"):
                    continue
                previous = {"default_payment_method": sub["default_payment_method"] or old}
                sub["default_payment_method"] = pm["id"]
                tx.put(sub)
                out.events.append(
                    o.event("customer.subscription.updated", sub, created=now, previous=previous)
                )
            return self._commit(tx, out, customer_id)

    def renew(self, sub_id: str) -> Outcome:
        """Advance the customer's test clock to the end of the subscription's period."""
        with self.store.transaction() as tx:
            sub = tx.require(sub_id)
            if sub["status"] in ("canceled", "incomplete_expired", "incomplete"):
                return Outcome(error=f"A {sub['status']} subscription does not renew.")
            customer = tx.require(str(sub["customer"]))
            now = self._tick(tx)
            out = Outcome()
            item = sub["items"]["data"][0]
            end = int(item["current_period_end"])
            clock = tx.require(str(customer["test_clock"]))
            clock["status"] = "advancing"
            out.events.append(o.event("test_helpers.test_clock.advancing", clock, created=now))
            clock.update(frozen_time=end, status="ready")
            tx.put(clock)
            if sub["cancel_at_period_end"]:
                self._end(tx, sub, end, now, out)
            else:
                self._next_period(tx, customer, sub, item, end, now, out)
            out.events.append(o.event("test_helpers.test_clock.ready", clock, created=now))
            return self._commit(tx, out, customer["id"])

    def _next_period(
        self, tx: Tx, customer: Obj, sub: Obj, item: Obj, start: int, now: int, out: Outcome
    ) -> None:
        previous = {"items": copy.deepcopy(sub["items"]), "latest_invoice": sub["latest_invoice"]}
        ended = (int(item["current_period_start"]), start)
        item.update(current_period_start=start, current_period_end=add_month(start))
        price = tx.require(str(item["price"]["id"]))
        invoice = self._new_invoice(tx, customer, sub, price, "subscription_cycle", ended, now)
        sub["latest_invoice"] = invoice["id"]
        tx.put(sub)
        out.events.append(o.event("customer.subscription.updated", sub, created=now, previous=previous))
        self._open_invoice(tx, customer, invoice, now, out)
        pm = tx.require(
            str(sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"])
        )
        paid = self._charge_invoice(tx, invoice, pm, now, out, authenticated=False, off_session=True)
        status = "active" if paid else "past_due"
        if paid and sub["status"] == "past_due":
            status = "past_due" if self._open_invoices(tx, sub["id"]) else "active"
        if status != sub["status"]:
            previous = {"status": sub["status"]}
            sub["status"] = status
            tx.put(sub)
            out.events.append(o.event("customer.subscription.updated", sub, created=now, previous=previous))

    # ---- reading ------------------------------------------------------------------------------------

    @staticmethod
    def _subscriptions(tx: Tx, customer_id: str) -> list[Obj]:
        return [s for s in tx.all("subscription") if s["customer"] == customer_id]

    @staticmethod
    def _open_invoices(tx: Tx, sub_id: str) -> list[Obj]:
        return [i for i in tx.all("invoice") if i["status"] == "open" and _subscription_of(i) == sub_id]

    def customer_view(self, customer_id: str) -> CustomerView:
        with self.store.transaction() as tx:
            customer = tx.require(customer_id)
            subs = self._subscriptions(tx, customer_id)
            invoices = [i for i in tx.all("invoice") if i["customer"] == customer_id]
            pm_id = customer["invoice_settings"]["default_payment_method"]
            pm = tx.get(str(pm_id)) if pm_id else None
            clock = tx.get(str(customer.get("test_clock") or ""))
            return CustomerView(customer, subs, sorted(invoices, key=lambda i: -int(i["created"])), pm, clock)

    @staticmethod
    def _remember_pages(tx: Tx, page_base: str) -> None:
        """Where the pages are, for the hosted invoice URLs of invoices made later."""
        tx.put({"id": "simulator_pages", "object": "simulator_meta", "base": page_base})

    @staticmethod
    def _page_base(tx: Tx) -> str:
        meta = tx.get("simulator_pages") or {}
        return str(meta.get("base") or "")

    def _commit(self, tx: Tx, out: Outcome, customer_id: str | None) -> Outcome:
        out.customer = customer_id
        for event in out.events:
            tx.add_event(event, customer_id)
        return out


@dataclass(frozen=True)
class CustomerView:
    customer: Obj
    subscriptions: list[Obj]
    invoices: list[Obj]
    payment_method: Obj | None
    clock: Obj | None


def session_line_price(session: Obj) -> str:
    return str(session["_price"])


def _on_session_result(card: str, authentication: str | None) -> Outcome | None:
    """What Checkout or the hosted invoice page shows before anything is charged: a declined
    card or a failed 3-D Secure step is an error on the page; a card that asks for 3-D Secure
    first shows the authentication step."""
    behaviour = o.CARDS.get(card, {}).get("behaviour")
    if behaviour is None:
        return Outcome(error="Your card number is incorrect.")
    if behaviour == "declined":
        return Outcome(error=str(o.card_error("card_declined", pm=None)["message"]))
    if behaviour == "authenticate":
        if authentication is None:
            return Outcome(needs_authentication=True)
        if authentication != "complete":
            return Outcome(
                error=str(o.card_error("payment_intent_authentication_failure", pm=None)["message"])
            )
    return None


def _customer_details(customer: Obj) -> Obj:
    return {
        "address": None,
        "business_name": None,
        "email": customer["email"],
        "individual_name": None,
        "name": customer["name"],
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def public(obj: Obj) -> Obj:
    """An object as the API shows it (the simulator's own ``_`` fields left out)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _subscription_of(invoice: Obj) -> str:
    return str(((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription") or "")
