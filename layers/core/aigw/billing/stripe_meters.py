"""Usage-based billing: usage records of metered plans reported to Stripe Billing Meters.

Off the request path: the usage record written by ``settle`` reaches the reporter through the
table's stream (filtered to records carrying ``meter_event_name``), in batches. Each meter
event's ``identifier`` is the gateway's request id, so Stripe counts a redelivered record once.
"""

from __future__ import annotations

from typing import Any

from aigw.billing.stripe_links import stripe_client
from aigw.table import deserialize
from aigw.usage.records import UsageRecord


def record_from_stream(record: dict[str, Any]) -> UsageRecord | None:
    """The usage record in a DynamoDB stream record, if it is one to report."""
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not image:
        return None
    item = deserialize(image)
    if item.get("type") != "usage" or not item.get("meter_event_name") or not item.get("stripe_customer_id"):
        return None
    return UsageRecord.from_item(item)


def meter_event_params(usage: UsageRecord) -> dict[str, Any]:
    return {
        "event_name": usage.meter_event_name,
        "identifier": usage.request_id,
        "timestamp": usage.created_at_ms // 1000,
        "payload": {"stripe_customer_id": usage.stripe_customer_id, "value": str(usage.total_tokens)},
    }


def report(usage: UsageRecord) -> None:
    if usage.total_tokens <= 0:
        return  # failed calls cost nothing and are not reported
    import stripe

    try:
        stripe_client().v1.billing.meter_events.create(meter_event_params(usage))
    except stripe.InvalidRequestError as exc:
        # Stripe answers a duplicate identifier with an error: it already counted this call.
        if "identifier" in str(exc).lower() and "already" in str(exc).lower():
            return
        raise
