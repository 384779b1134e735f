"""Adds usage records to the report cells, from the table's stream, exactly once each.

One conditional write per cell a batch touches (aigw.usage.aggregation). When a cell cannot be
written, the first record not counted is reported back as a batch item failure: the stream
delivers it and what follows it again, and the cells' checkpoints skip what was counted."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw.usage.aggregation import apply_stream_batch

logger = Logger(service="aigw-report-aggregator")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = apply_stream_batch(event.get("Records") or [])
    failures = []
    if outcome.failed_sequence is not None:
        failures.append({"itemIdentifier": outcome.failed_sequence})
    return {"batchItemFailures": failures}
