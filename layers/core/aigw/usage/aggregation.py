"""Report aggregates from the table stream: every usage record counted exactly once.

``settle`` writes the billing counters and the usage record, nothing else (two items, one
transaction). The record's INSERT reaches :class:`StreamBatch` through the table stream; the
record's contributions (:func:`aigw.usage.reports.contributions`) are added to the aggregates in a
transaction that also marks the record itself (``SET aggregated_at``, on condition that it is
not set yet). A redelivered record therefore cancels its transaction and is skipped: the
aggregates move once per record, however often the stream delivers it.

A busy team's records arrive together: the records of one team in one stream batch go into as
few transactions as fit (their marks plus the summed aggregate updates, at most
:data:`MAX_TRANSACTION_ITEMS` items). When such a transaction is cancelled because some records
were already applied, those are dropped and the rest tried again once; if that fails too, each
record is applied on its own (:meth:`StreamBatch.aggregate`), which decides what fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from aigw import clock
from aigw.errors import ServiceUnavailable
from aigw.table import ConditionFailed, deserialize, gateway_table
from aigw.usage.records import UsageRecord, items_for_day
from aigw.usage.reports import Contribution, contributions

MARK = "aggregated_at"
# DynamoDB's limit on the items of one TransactWriteItems.
MAX_TRANSACTION_ITEMS = 100

Key = tuple[str, str]


@dataclass(frozen=True)
class Pending:
    """A usage record delivered by the stream, with the key of the item to mark."""

    key: Key
    record: UsageRecord

    @property
    def contributions(self) -> list[Contribution]:
        return contributions(self.record)


def pending_from_stream(raw: Mapping[str, Any]) -> Pending | None:
    """The usage record in a DynamoDB stream record, or None for any other item."""
    image = (raw.get("dynamodb") or {}).get("NewImage")
    if not image:
        return None
    item = deserialize(image)
    if item.get("type") != "usage":
        return None
    return Pending(key=(str(item["pk"]), str(item["sk"])), record=UsageRecord.from_item(item))


def _mark(key: Key, now: int) -> dict[str, Any]:
    # attribute_exists(pk): an Update must never create a record that is not there.
    return {
        "Update": {
            "Key": {"pk": {"S": key[0]}, "sk": {"S": key[1]}},
            "UpdateExpression": "SET #mark = :now",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(#mark)",
            "ExpressionAttributeNames": {"#mark": MARK},
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
        }
    }


def operations(group: Sequence[Pending], now: int) -> list[dict[str, Any]]:
    """One transaction for records of one team: a mark per record, then each aggregate item
    touched once with the records' summed counters."""
    sums: dict[str, Contribution] = {}
    for pending in group:
        for part in pending.contributions:
            sums[part.sk] = sums[part.sk].plus(part) if part.sk in sums else part
    return [*(_mark(p.key, now) for p in group), *(c.update() for c in sums.values())]


def chunks(group: Sequence[Pending]) -> list[list[Pending]]:
    """Records of one team cut into runs whose transaction stays within the item limit."""
    found: list[list[Pending]] = []
    current: list[Pending] = []
    touched: set[str] = set()
    for pending in group:
        sks = {c.sk for c in pending.contributions}
        if current and len(current) + 1 + len(touched | sks) > MAX_TRANSACTION_ITEMS:
            found.append(current)
            current, touched = [], set()
        current.append(pending)
        touched |= sks
    if current:
        found.append(current)
    return found


def apply_one(pending: Pending) -> bool:
    """Add one record to the aggregates; False if it was already added (nothing changes)."""
    try:
        gateway_table().transact(operations([pending], clock.now()))
    except ConditionFailed:
        return False
    return True


def _apply_group(group: list[Pending]) -> set[Key]:
    """Keys of the records of ``group`` now known to be in the aggregates (added by this call or
    before it). Records left out are for :func:`apply_one` to decide."""
    known: set[Key] = set()
    for _ in range(2):
        try:
            gateway_table().transact(operations(group, clock.now()))
        except ConditionFailed as exc:
            # The cancellation names the items whose condition failed: those marks are set
            # already (a redelivery), so those records are in; the rest may go again, together.
            marks = zip(group, exc.reasons, strict=False)
            applied = {p.key for p, reason in marks if reason == "ConditionalCheckFailed"}
            known |= applied
            group = [p for p in group if p.key not in applied]
            if not applied or not group:
                return known
            continue
        except (ServiceUnavailable, ClientError):
            return known  # each record on its own decides what fails, and says so
        return known | {p.key for p in group}
    return known


def _parsed_or_none(raw: Mapping[str, Any]) -> Pending | None:
    try:
        return pending_from_stream(raw)
    except Exception:
        return None  # a malformed record fails on its own, in StreamBatch.aggregate


class StreamBatch:
    """One stream batch: the team-batched transactions first (:meth:`apply_by_team`), then each
    record accounted for on its own (:meth:`aggregate`, the batch processor's record handler)."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.pending = [p for p in map(_parsed_or_none, records) if p is not None]
        self.done: set[Key] = set()

    def apply_by_team(self) -> None:
        by_team: dict[str, dict[Key, Pending]] = {}
        for pending in self.pending:  # a record twice in one batch would be two writes to one item
            by_team.setdefault(pending.record.team_id, {})[pending.key] = pending
        for group in by_team.values():
            for chunk in chunks(list(group.values())):
                if len(chunk) > 1:  # a lone record is the per-record path's own transaction
                    self.done |= _apply_group(chunk)

    def aggregate(self, raw: Mapping[str, Any]) -> None:
        """Account for one stream record; raises if it could not be applied (to be retried)."""
        pending = pending_from_stream(raw)
        if pending is None or pending.key in self.done:
            return
        apply_one(pending)
        self.done.add(pending.key)


def catch_up(team_id: str, day: str) -> int:
    """Add the usage records of one team and UTC day that are not in the aggregates yet (a
    stream batch that ended in the dead-letter queue); returns how many were added. Safe at any
    time, also while the stream is delivering: a record is added at most once, whoever adds it."""
    items = items_for_day(team_id, day)
    missing = [
        Pending(key=(str(item["pk"]), str(item["sk"])), record=UsageRecord.from_item(item))
        for item in items
        if item.get("type") == "usage" and MARK not in item
    ]
    return sum(apply_one(pending) for pending in missing)
