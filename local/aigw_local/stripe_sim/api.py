"""The part of Stripe's REST API the gateway calls, on the simulator's account.

Form-encoded requests (``line_items[0][price]=...``) in, JSON out, errors in Stripe's shape,
a Bearer key checked like Stripe does. The core's ``stripe`` client is pointed here with
``STRIPE_API_BASE``, so the gateway's own Checkout and portal code runs unchanged.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from aigw_local.apigw import HttpRequest, HttpResponse
from aigw_local.stripe_sim.account import Account, StripeError, public
from aigw_local.stripe_sim.objects import API_VERSION

Obj = dict[str, Any]
_KEY_PART = re.compile(r"\[([^\]]*)\]")
# GET /v1/<collection>/<id>: objects anyone may read back by id, with the kind each holds.
_COLLECTIONS = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "payment_intents": "payment_intent",
    "payment_methods": "payment_method",
    "prices": "price",
    "products": "product",
    "checkout/sessions": "checkout.session",
    "test_helpers/test_clocks": "test_helpers.test_clock",
}


def decode_form(body: str) -> Obj:
    """Stripe's form encoding (``a[b][0][c]=v``) as nested dicts and lists."""
    root: Obj = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        head = name.split("[", 1)[0]
        path = [head, *_KEY_PART.findall(name[len(head) :])]
        node: Any = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    decoded: Obj = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


class StripeApi:
    def __init__(self, account: Account, *, api_key: str, page_base: str) -> None:
        self.account = account
        self.api_key = api_key
        self.page_base = page_base

    def handle(self, request: HttpRequest, path: str) -> HttpResponse:
        """``path`` is the request path after the simulator's prefix (``/v1/...``)."""
        request_id = "req_" + secrets.token_hex(7)
        try:
            self._authenticate(request)
            body = self._route(request, path)
            return _json(200, body, request_id)
        except StripeError as exc:
            return _json(exc.status, exc.body(), request_id)

    def _authenticate(self, request: HttpRequest) -> None:
        auth = next((v for k, v in request.headers if k.lower() == "authorization"), "")
        if not auth:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if auth.removeprefix("Bearer ").strip() != self.api_key:
            raise StripeError(401, "Invalid API Key provided.", code="api_key_invalid")

    def _route(self, request: HttpRequest, path: str) -> Obj:
        params = (
            decode_form(request.body.decode("utf-8"))
            if request.method == "POST"
            else decode_form(request.query)
        )
        if request.method == "GET" and path == "/v1/prices":
            keys = params.get("lookup_keys") or []
            keys = keys if isinstance(keys, list) else [keys]
            found = self.account.prices([str(k) for k in keys])
            limit = int(params.get("limit") or 10)
            return {
                "object": "list",
                "data": found[:limit],
                "has_more": len(found) > limit,
                "url": "/v1/prices",
            }
        if request.method == "POST" and path == "/v1/checkout/sessions":
            return self.account.create_checkout_session(
                params, page_base=self._pages_for(params, "success_url")
            )
        if request.method == "POST" and path == "/v1/billing_portal/sessions":
            return self.account.create_portal_session(params, page_base=self._pages_for(params, "return_url"))
        if request.method == "POST" and path == "/v1/billing/meter_events":
            return _meter_event(params)
        if request.method == "GET":
            for collection, kind in _COLLECTIONS.items():
                prefix = f"/v1/{collection}/"
                if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                    obj = self.account.store.get(path[len(prefix) :])
                    if obj is None or obj.get("object") != kind:
                        raise StripeError(
                            404,
                            f"No such {kind.split('.')[-1]}: '{path[len(prefix) :]}'",
                            code="resource_missing",
                        )
                    return public(obj)
        raise StripeError(404, f"Unrecognized request URL ({request.method}: {path}).")

    def _pages_for(self, params: Obj, url_param: str) -> str:
        """The simulator's pages on the host the user's browser knows the gateway by (that of
        the gateway's return URL), so the pages share its origin."""
        url = str(params.get(url_param) or "")
        match = re.match(r"^(https?://[^/]+)", url)
        base = match.group(1) if match else self.page_base.split("/_stripe")[0]
        return base + "/_stripe"


def _meter_event(params: Obj) -> Obj:
    payload = params.get("payload") or {}
    return {
        "object": "billing.meter_event",
        "created": int(time.time()),
        "event_name": params.get("event_name"),
        "identifier": params.get("identifier"),
        "livemode": False,
        "payload": payload,
        "timestamp": int(params.get("timestamp") or time.time()),
    }


def _json(status: int, body: Obj, request_id: str) -> HttpResponse:
    headers = [
        ("Content-Type", "application/json"),
        ("Request-Id", request_id),
        ("Stripe-Version", API_VERSION),
        ("Cache-Control", "no-cache, no-store"),
    ]
    return HttpResponse(status, headers, json.dumps(body, indent=2).encode())
