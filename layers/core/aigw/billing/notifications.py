"""Operator notifications as EventBridge events (source ``aigw.billing``).

Detail types: ``Payment Failed``, ``Grace Started``, ``Access Suspended``, ``Access Restored``,
``Quota Threshold Reached`` (80 and 100 percent), ``Trial Ending``, ``Credits Purchased``,
``Billing Conflict`` (a Stripe event that would move a customer to another team).
The template routes them to an SNS topic an operator can subscribe an email address to.
Without ``EVENT_BUS_NAME`` (locally) they are only logged. A notification never fails a call.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aws_lambda_powertools import Logger

from aigw import clock
from aigw.billing.config import billing_settings
from aigw.config import settings

SOURCE = "aigw.billing"
logger = Logger(service="aigw")


@functools.cache
def _events_client() -> Any:
    import boto3
    from botocore.config import Config

    # Short timeouts: a notification must never hold up the call that triggered it.
    config = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("events", region_name=settings().region, config=config)


def emit(detail_type: str, team_id: str, **detail: Any) -> None:
    payload = {"team_id": team_id, "at": clock.iso(clock.now()), **detail}
    bus = billing_settings().event_bus_name
    logger.info("billing notification", extra={"detail_type": detail_type, "detail": payload})
    if not bus:
        return
    try:
        result = _events_client().put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(payload, default=str),
                    "EventBusName": bus,
                }
            ]
        )
        if result.get("FailedEntryCount"):
            logger.warning("notification not accepted", extra={"result": result.get("Entries")})
    except Exception:
        logger.exception("notification failed", extra={"detail_type": detail_type})


def reset() -> None:
    _events_client.cache_clear()
