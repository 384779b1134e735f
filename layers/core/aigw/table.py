"""The single DynamoDB table: one client per container, typed (de)serialisation, and the
translation of DynamoDB faults into :class:`ServiceUnavailable` so that callers fail closed.

Key design (single-table):

=====================  ==========================  ==========================================
item                   pk                          sk
=====================  ==========================  ==========================================
team                   ``TEAM#<team_id>``          ``META``           (gsi1: ``TEAMS``)
key pointer            ``TEAM#<team_id>``          ``KEY#<key_id>``
key (by hash)          ``KEY#<sha256>``            ``META``
usage record           ``USAGE#<team>#<day>``      ``<epoch_ms>#<request_id>``
=====================  ==========================  ==========================================
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from aigw.config import settings
from aigw.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

Item = dict[str, Any]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Faults that mean "DynamoDB could not decide", as opposed to a failed condition.
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ResourceNotFoundException",
    }
)


class ConditionFailed(Exception):
    """A conditional write or transaction was refused; the caller decides what it means."""

    def __init__(
        self, reasons: Sequence[str] = (), item: Item | None = None, items: Sequence[Item | None] = ()
    ) -> None:
        super().__init__("condition failed")
        self.reasons = list(reasons)
        # The item as it was when the condition failed, when the caller asked for it.
        self.item = item
        # A transaction: each operation's item as it was, where that operation asked for it
        # (``ReturnValuesOnConditionCheckFailure``) and its condition failed.
        self.items = list(items)

    def failed(self, index: int) -> bool:
        """Whether the transaction's operation ``index`` is one whose condition failed."""
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def deserialize(raw: Mapping[str, Any]) -> Item:
    return {k: _deserializer.deserialize(v) for k, v in raw.items()}


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items()}


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            old: Any = exc.response.get("Item")
            raise ConditionFailed([code], deserialize(old) if old else None) from exc
        if code == "TransactionCanceledException":
            cancelled = exc.response.get("CancellationReasons", [])
            reasons = [r.get("Code", "None") for r in cancelled]
            if "ConditionalCheckFailed" in reasons:
                items = [deserialize(r["Item"]) if r.get("Item") else None for r in cancelled]
                raise ConditionFailed(reasons, items=items) from exc
            raise ServiceUnavailable(
                "The gateway's database is busy; retry shortly.", headers={"Retry-After": "1"}
            ) from exc
        if code in _UNAVAILABLE_CODES:
            raise ServiceUnavailable(
                "The gateway's database is unavailable; retry shortly.", headers={"Retry-After": "1"}
            ) from exc
        raise
    except BotoCoreError as exc:
        # Connection refused, timeouts, DNS: fail closed, never let a call through unmetered.
        raise ServiceUnavailable(
            "The gateway's database is unreachable; retry shortly.", headers={"Retry-After": "2"}
        ) from exc


# Concurrent writes to one item (a busy team's counters) make DynamoDB cancel a transaction
# with TransactionConflict, or refuse an UpdateItem with TransactionConflictException. Nothing
# was applied, so trying again is safe; a few jittered attempts absorb ordinary bursts.
CONFLICT_ATTEMPTS = 4


def _is_conflict(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "TransactionConflictException":
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = {r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])}
    return "TransactionConflict" in reasons and "ConditionalCheckFailed" not in reasons


def _retry_conflicts[T](call: Callable[[], T]) -> T:
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return call()
        except ClientError as exc:
            if attempt + 1 == CONFLICT_ATTEMPTS or not _is_conflict(exc):
                raise
            time.sleep(random.uniform(0.005, 0.02) * 2**attempt)
    raise AssertionError("unreachable")


_SINGLE = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}


class Table:
    def __init__(self, name: str, client: DynamoDBClient) -> None:
        self.name = name
        self.client = client

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> Item | None:
        with _guard():
            raw = self.client.get_item(
                TableName=self.name, Key=serialize({"pk": pk, "sk": sk}), ConsistentRead=consistent
            )
        found = raw.get("Item")
        return deserialize(found) if found else None

    def put(self, item: Mapping[str, Any], *, condition: str | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        with _guard():
            self.client.put_item(**kwargs)

    def delete(self, pk: str, sk: str, *, condition: str | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": serialize({"pk": pk, "sk": sk})}
        if condition:
            kwargs["ConditionExpression"] = condition
        with _guard():
            self.client.delete_item(**kwargs)

    def update(
        self,
        pk: str,
        sk: str,
        *,
        expression: str,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        condition: str | None = None,
        return_new: bool = False,
        old_on_failure: bool = False,
    ) -> Item | None:
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize({"pk": pk, "sk": sk}),
            "UpdateExpression": expression,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = _values(values)
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        if condition:
            kwargs["ConditionExpression"] = condition
        if return_new:
            kwargs["ReturnValues"] = "ALL_NEW"
        if old_on_failure:
            # Saves a read: a refused conditional write says why in the same round trip.
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with _guard():
            raw = _retry_conflicts(lambda: self.client.update_item(**kwargs))
        attrs = raw.get("Attributes")
        return deserialize(attrs) if attrs else None

    def query(
        self,
        key_condition: str,
        values: Mapping[str, Any],
        *,
        index: str | None = None,
        names: Mapping[str, str] | None = None,
        limit: int | None = None,
        forward: bool = True,
        consistent: bool = False,
    ) -> list[Item]:
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": _values(values),
            "ScanIndexForward": forward,
        }
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = consistent
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        items: list[Item] = []
        with _guard():
            while True:
                if limit is not None:
                    kwargs["Limit"] = limit - len(items)
                page = self.client.query(**kwargs)
                items.extend(deserialize(raw) for raw in page.get("Items", []))
                last = page.get("LastEvaluatedKey")
                if not last or (limit is not None and len(items) >= limit):
                    return items
                kwargs["ExclusiveStartKey"] = last

    def transact(self, operations: Sequence[Mapping[str, Any]]) -> None:
        """Run low-level TransactWriteItems operations; ``TableName`` is filled in. A refused
        condition raises :class:`ConditionFailed` with each operation's reason and, where the
        operation asked for it, its item as it was."""
        prepared = []
        for op in operations:
            ((kind, body),) = op.items()
            prepared.append({kind: {"TableName": self.name, **body}})
        with _guard():
            _retry_conflicts(lambda: self.client.transact_write_items(TransactItems=prepared))  # type: ignore[arg-type]

    def write_one(self, operation: Mapping[str, Any]) -> None:
        """One operation shaped like :meth:`transact`'s, written as a single-item ``PutItem``,
        ``UpdateItem`` or ``DeleteItem`` (half the write capacity of a one-item transaction). A
        refused condition is reported as a transaction's would be."""
        ((kind, body),) = operation.items()
        call: Callable[..., Any] = getattr(self.client, _SINGLE[kind])
        kwargs = {"TableName": self.name, **body}
        try:
            with _guard():
                _retry_conflicts(lambda: call(**kwargs))
        except ConditionFailed as exc:
            raise ConditionFailed(["ConditionalCheckFailed"], exc.item, [exc.item]) from exc


def make_client(endpoint: str | None = None) -> DynamoDBClient:
    cfg = settings()
    # Short timeouts: an unreachable table must turn into a fast 503, not a hung Lambda.
    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 3, "mode": "standard"},
        tcp_keepalive=True,
        # botocore re-checks every request against the service model in Python (a third of a
        # warm call's CPU with a few-item transaction); DynamoDB validates them anyway and its
        # ValidationException reaches us as a ClientError all the same.
        parameter_validation=False,
    )
    return boto3.client(
        "dynamodb",
        region_name=cfg.region,
        endpoint_url=endpoint or cfg.dynamodb_endpoint,
        config=config,
    )


@functools.cache
def gateway_table() -> Table:
    """The table for this container; created once, reused by every invocation."""
    return Table(settings().table_name, make_client())


def reset() -> None:
    """Forget the cached client (tests, or the local runner after changing settings)."""
    gateway_table.cache_clear()
