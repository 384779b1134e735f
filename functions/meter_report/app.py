"""Reports metered usage to Stripe Billing Meters, from the table's stream, in batches.

A record that fails is reported back as a batch item failure, so only it is retried; after
the retries it lands in the dead-letter queue (see template.yaml)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw.billing import stripe_meters

logger = Logger(service="aigw-meter-report")
# A batch where every record failed is still answered item by item, not as one exception.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


def report_one(record: DynamoDBRecord) -> None:
    usage = stripe_meters.record_from_stream(record.raw_event)
    if usage is not None:
        stripe_meters.report(usage)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result: dict[str, Any] = process_partial_response(
        event=event, record_handler=report_one, processor=processor, context=context
    )
    return result
