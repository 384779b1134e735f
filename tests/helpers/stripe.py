"""Stripe for tests: real-shaped events from events/stripe, signed with the stripe library's
own scheme, and a fake Stripe API on loopback speaking Stripe's form-encoded wire format."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.helpers.apigw import EVENTS, Reply, call
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted

WEBHOOK_SECRET = "whsec_test_0123456789abcdef0123456789abcdef"
SAMPLE_T0 = 1_764_000_000  # the samples' base time; events are moved to "now" when loaded
_ids = itertools.count(1)


def _shift(value: Any, offset: int) -> Any:
    if isinstance(value, dict):
        return {k: _shift(v, offset) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, offset) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value - SAMPLE_T0) < 60 * 86_400:
        return value + offset
    return value


def stripe_event(name: str, *, at: int | None = None, fresh_id: bool = True, **obj: Any) -> dict[str, Any]:
    """The sample ``events/stripe/<name>.json`` with its times moved so it happened at ``at``
    (default now, plus the sample's own offset) and ``obj`` merged into ``data.object``."""
    sample = json.loads((EVENTS / "stripe" / f"{name}.json").read_text(encoding="utf-8"))
    base = at if at is not None else int(time.time())
    event: dict[str, Any] = _shift(copy.deepcopy(sample), base - SAMPLE_T0)
    if fresh_id:
        event["id"] = f"{event['id']}_{next(_ids)}"
    event["data"]["object"].update(obj)
    return event


def signature(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp))


def deliver(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> Reply:
    payload = json.dumps(event)
    header = signature(payload, secret=secret, timestamp=timestamp)
    return call("POST", "/webhooks/stripe", raw_body=payload, headers={"Stripe-Signature": header})


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


class FakeStripe:
    """The few Stripe API endpoints the gateway calls, recording every request."""

    def __init__(self) -> None:
        self.prices: dict[str, str] = {}  # lookup_key -> price id
        self.meter_identifiers: set[str] = set()
        # PaymentIntents created and confirmed with a shared payment token (machine payments).
        # The token decides the outcome: "..._requires_action" needs 3-D Secure, "..._declined"
        # is a card error, "..._unreachable" answers 500 three times, the stripe library's first try and
        # its two retries (then it succeeds), any other succeeds.
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[str, tuple[dict[str, str], Scripted]] = {}
        self.spent_tokens: dict[str, str] = {}  # spt -> idempotency key that used it
        self.failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = FakeUpstream(self._respond)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def start(self) -> FakeStripe:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def calls(self, path: str) -> list[dict[str, str]]:
        return [_form(r.body) for r in self.requests if urlsplit(r.path).path == path]

    def _respond(self, request: Recorded) -> Scripted:
        path = urlsplit(request.path).path
        if not request.headers.get("Authorization", "").startswith("Bearer sk_test_"):
            return _error(401, "Invalid API Key provided", "api_key_invalid", kind="invalid_request_error")
        form = _form(request.body)
        if request.method == "POST" and path == "/v1/billing_portal/sessions":
            return Scripted(
                body={
                    "id": "bps_1SgwFake",
                    "object": "billing_portal.session",
                    "customer": form["customer"],
                    "livemode": False,
                    "return_url": form.get("return_url"),
                    "url": f"https://billing.stripe.com/p/session/test_{form['customer']}",
                }
            )
        if request.method == "GET" and path == "/v1/prices":
            query = dict(parse_qsl(urlsplit(request.path).query))
            key = query.get("lookup_keys[0]", "")
            found = (
                [{"id": self.prices[key], "object": "price", "lookup_key": key}] if key in self.prices else []
            )
            return Scripted(body={"object": "list", "data": found, "has_more": False, "url": "/v1/prices"})
        if request.method == "POST" and path == "/v1/checkout/sessions":
            return Scripted(
                body={
                    "id": "cs_test_fake",
                    "object": "checkout.session",
                    "mode": form["mode"],
                    "client_reference_id": form.get("client_reference_id"),
                    "url": "https://checkout.stripe.com/c/pay/cs_test_fake",
                }
            )
        if request.method == "POST" and path == "/v1/billing/meter_events":
            identifier = form["identifier"]
            if identifier in self.meter_identifiers:
                return _error(
                    400,
                    f"An event already exists with identifier {identifier}.",
                    "meter_event_duplicate_identifier",
                )
            self.meter_identifiers.add(identifier)
            return Scripted(
                body={
                    "object": "billing.meter_event",
                    "created": int(time.time()),
                    "event_name": form["event_name"],
                    "identifier": identifier,
                    "livemode": False,
                    "payload": {
                        "stripe_customer_id": form["payload[stripe_customer_id]"],
                        "value": form["payload[value]"],
                    },
                    "timestamp": int(form["timestamp"]),
                }
            )
        if request.method == "POST" and path == "/v1/payment_intents":
            with self._lock:  # Stripe serialises requests that share an idempotency key
                return self._payment_intent(request, form)
        if request.method == "POST" and path.startswith("/v1/payment_intents/") and path.endswith("/cancel"):
            pi = self.payment_intents.get(path.split("/")[3])
            if pi is None:
                return _error(404, "No such payment_intent", "resource_missing")
            pi["status"] = "canceled"
            return Scripted(body=pi)
        return _error(404, f"Unrecognized request URL ({request.method}: {path}).", None)

    def succeeded(self) -> list[dict[str, Any]]:
        return [pi for pi in self.payment_intents.values() if pi["status"] == "succeeded"]

    def _payment_intent(self, request: Recorded, form: dict[str, str]) -> Scripted:
        key = request.headers.get("Idempotency-Key") or request.headers.get("idempotency-key")
        if key and key in self.idempotent:
            params, answer = self.idempotent[key]
            if params != form:
                return _error(
                    400,
                    f"Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{key}' if you meant to execute a "
                    "different request.",
                    "idempotency_key_in_use",
                    kind="idempotency_error",
                )
            return Scripted(status=answer.status, body=answer.body, headers={"Idempotent-Replayed": "true"})
        spt = form.get("shared_payment_granted_token", "")
        if not spt.startswith("spt_"):
            return _error(400, "Invalid shared_payment_granted_token", "resource_missing")
        if spt.endswith("_unreachable") and self.failures.get(spt, 0) < 3:
            self.failures[spt] = self.failures.get(spt, 0) + 1  # a Stripe 5xx, nothing created
            return _error(500, "An unknown error occurred", None, kind="api_error")
        if spt in self.spent_tokens and self.spent_tokens[spt] != key:
            return _error(400, "This shared payment token has already been used.", "token_already_used")
        self.spent_tokens[spt] = key or ""
        if spt.endswith("_declined"):
            answer = Scripted(
                status=402,
                body={
                    "error": {
                        "message": "Your card was declined.",
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "generic_decline",
                    }
                },
            )
        else:
            pi_id = f"pi_fake{next(_ids):06d}"
            status = "requires_action" if spt.endswith("_requires_action") else "succeeded"
            pi = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": int(form["amount"]),
                "amount_received": int(form["amount"]) if status == "succeeded" else 0,
                "currency": form["currency"],
                "status": status,
                "shared_payment_granted_token": spt,
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
                "livemode": False,
                "created": int(time.time()),
            }
            if status == "requires_action":
                pi["next_action"] = {"type": "use_stripe_sdk"}
            self.payment_intents[pi_id] = pi
            answer = Scripted(body=copy.deepcopy(pi))
        if key:
            self.idempotent[key] = (form, answer)
        return answer


def _error(status: int, message: str, code: str | None, *, kind: str = "invalid_request_error") -> Scripted:
    return Scripted(status=status, body={"error": {"message": message, "type": kind, "code": code}})


def open_link(url: str) -> Reply:
    """GET a gateway link from a 402 (``fix_url``) through the real handler, as a browser would."""
    from tests.helpers.apigw import build_event, invoke_event

    parts = urlsplit(url)
    path = parts.path[parts.path.index("/billing/") :]  # drop the stage or base path
    event, route = build_event("GET", path)
    query = dict(parse_qsl(parts.query))
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    return invoke_event(event, route)
