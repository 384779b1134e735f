"""Adds usage records to the report aggregates, from the table's stream, exactly once each.

The records of one team go in together first (aigw.usage.aggregation); the batch processor
then accounts for every record on its own, so a record that fails is reported back as a batch
item failure and only it (and what follows it on its shard) is retried; after the retries it
lands in the dead-letter queue (see template.yaml)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw.usage.aggregation import StreamBatch

logger = Logger(service="aigw-report-aggregator")
# A batch where every record failed is still answered item by item, not as one exception.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = StreamBatch(event.get("Records") or [])
    batch.apply_by_team()

    def aggregate_one(record: DynamoDBRecord) -> None:
        batch.aggregate(record.raw_event)

    result: dict[str, Any] = process_partial_response(
        event=event, record_handler=aggregate_one, processor=processor, context=context
    )
    return result
