"""A stand-in for EventBridge's ``PutEvents``, so the gateway's notifications can be seen locally.

The runner sets ``EVENT_BUS_NAME`` and ``AWS_ENDPOINT_URL_EVENTBRIDGE`` (boto3's endpoint
variable for the service) to this endpoint, so :mod:`aigw.notifications` runs its real code:
each notification (``Payment Failed``, ``Quota Threshold Reached``...) is printed on the
runner's console and listed on the Stripe simulator's pages.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from aigw_local.apigw import HttpRequest, HttpResponse
from aigw_local.stripe_sim.store import Store

PREFIX = "/_local/eventbridge"
BUS_NAME = "aigw-local"


class LocalEventBus:
    def __init__(self, store: Store, log: Callable[[str], None] | None = None) -> None:
        self.store = store
        self._log = log

    def handle(self, request: HttpRequest) -> HttpResponse:
        target = next((v for k, v in request.headers if k.lower() == "x-amz-target"), "")
        if request.method != "POST" or target != "AWSEvents.PutEvents":
            return _json(400, {"__type": "UnknownOperationException", "message": f"not supported: {target}"})
        try:
            entries = json.loads(request.body or b"{}").get("Entries") or []
        except ValueError:
            return _json(400, {"__type": "SerializationException", "message": "body is not JSON"})
        results = []
        for entry in entries:
            detail = _detail(entry.get("Detail"))
            kind = str(entry.get("DetailType") or "")
            team = detail.get("team_id")
            self.store.add_notification(str(team) if team else None, kind, detail)
            if self._log:
                extra = ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("team_id", "at"))
                self._log(f"notification: {kind} (team {team}){': ' + extra if extra else ''}")
            results.append({"EventId": str(uuid.uuid4())})
        return _json(200, {"FailedEntryCount": 0, "Entries": results})


def _detail(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"detail": raw}
    return value if isinstance(value, dict) else {"detail": value}


def _json(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(body).encode())
