"""Reclaims the budget leases of containers that died, on a schedule.

A Lambda container that goes idle is frozen and later killed without notice, so its lease
always ends by expiry: this sweeper (and any admission about to refuse a call for lack of
budget) charges the usage its calls recorded and returns the rest. See
:mod:`aigw.billing.reclaim` and docs/decisions/0019-budget-leases.md."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw.billing import reclaim

logger = Logger(service="aigw-lease-sweeper")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    reclaimed = reclaim.sweep()
    logger.info("swept budget leases", extra={"reclaimed": reclaimed})
    return {"reclaimed": reclaimed}
