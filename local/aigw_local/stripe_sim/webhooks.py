"""Events to the gateway's own ``POST /webhooks/stripe``, signed as Stripe signs them.

The signature is made with the ``stripe`` library's own scheme and the runner's webhook secret,
so the webhook handler verifies it exactly as it verifies Stripe's. Events of a flow are sent
one after the other, each waiting for the answer, before the page the user is on moves on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import stripe

from aigw_local.stripe_sim.store import Delivery, Store

Obj = dict[str, Any]
logger = logging.getLogger(__name__)


class WebhookSender:
    def __init__(
        self, store: Store, *, url: str, secret: Callable[[], str], log: Callable[[str], None] | None = None
    ) -> None:
        self.store = store
        self.url = url
        self._secret = secret
        self._log = log
        # Straight to the runner on loopback: never through a proxy from the environment.
        self._http = httpx.Client(timeout=30, trust_env=False)

    def send(self, events: list[Obj]) -> list[Delivery]:
        return [self.send_one(event) for event in events]

    def send_one(self, event: Obj) -> Delivery:
        payload = json.dumps(event, indent=2)
        header = stripe.WebhookSignature.generate_signature_header(payload, self._secret())
        status: int | None = None
        outcome: str | None = None
        try:
            reply = self._http.post(
                self.url,
                content=payload.encode(),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": header,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    "Cache-Control": "no-cache",
                },
            )
            status = reply.status_code
            outcome = _outcome(reply)
        except httpx.HTTPError as exc:
            outcome = f"not delivered: {exc}"
        self.store.record_delivery(str(event["id"]), status, outcome)
        if self._log:
            self._log(f"stripe simulator: {event['type']} -> {status or '-'} {outcome or ''}".rstrip())
        return Delivery(0, event, status, outcome)

    def resend(self, event_id: str) -> Delivery | None:
        found = self.store.delivery(event_id)
        return self.send_one(found.event) if found else None


def _outcome(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:200]
    if isinstance(body, dict):
        if "outcome" in body:
            return str(body["outcome"])
        detail = body.get("detail") or body.get("message")
        if detail:
            return str(detail)[:200]
    return reply.text[:200]
