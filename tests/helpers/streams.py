"""The table stream drained through the real stream handlers, as the deployed event sources do.

Reports are eventually consistent: a test that reads them after writing usage records first
calls :func:`drain_reports`, which reads the stream (moto's or DynamoDB Local's) with the
runner's poller and invokes ``ReportAggregatorFunction`` with real DynamoDB stream events, without waiting out
the template's batching window."""

from __future__ import annotations

import functools
from typing import Any

from aigw.config import settings
from aigw_local import streams
from aigw_local import template as tpl
from aigw_local.server import Handler, load_handler

AGGREGATOR = "ReportAggregatorFunction"

_pollers: dict[tuple[str | None, str, str, str], streams.StreamPoller] = {}
_delivered: list[tuple[dict[str, Any], Any]] = []


@functools.cache
def source(logical_id: str = AGGREGATOR) -> streams.StreamSource:
    return next(s for s in streams.sources(tpl.load()) if s.function.logical_id == logical_id)


@functools.cache
def handler(logical_id: str = AGGREGATOR) -> Handler:
    return load_handler(source(logical_id).function)


def _recording(logical_id: str) -> Handler:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        result = handler(logical_id)(event, context)
        _delivered.append((event, result))
        return result

    return invoke


def poller(logical_id: str = AGGREGATOR) -> streams.StreamPoller:
    """The poller of this test's table (kept, so each drain reads on from where the last stopped)."""
    cfg = settings()
    arn = streams.stream_arn(cfg.dynamodb_endpoint, cfg.table_name)
    key = (cfg.dynamodb_endpoint, cfg.table_name, arn, logical_id)
    if key not in _pollers:
        _pollers[key] = streams.StreamPoller(
            source(logical_id),
            _recording(logical_id),
            client=streams.streams_client(cfg.dynamodb_endpoint),
            table_name=cfg.table_name,
            stream_arn=arn,
        )
    return _pollers[key]


def drain_reports() -> list[tuple[dict[str, Any], Any]]:
    """Deliver every record waiting on the stream to the report aggregator; the (event, answer)
    pairs of the invocations, for tests that deliver a batch again."""
    del _delivered[:]
    poller().drain()
    return list(_delivered)


def poll_reports() -> list[tuple[dict[str, Any], Any]]:
    """One read of the stream and what it delivered (without waiting out the batching window),
    failed batches included."""
    del _delivered[:]
    poller().poll(flush=True)
    return list(_delivered)


def forget() -> None:
    _pollers.clear()
