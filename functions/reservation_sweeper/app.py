"""Releases the reservations of calls that died before settling, on a schedule.

Reservations are also released lazily on a team's next call; this catches teams that went
quiet. See :mod:`aigw.billing.holds`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw.billing import holds

logger = Logger(service="aigw-reservation-sweeper")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    released = holds.sweep()
    logger.info("swept reservations", extra={"released": released})
    return {"released": released}
