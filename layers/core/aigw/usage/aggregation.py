"""Usage records into the report cells, from the table stream: each record counted exactly once,
at about one write per cell a batch touches (see :mod:`aigw.usage.cells` for the item and its
checkpoints, docs/decisions/0018-report-cells.md for why).

The stream delivers a usage record's ``INSERT`` to :func:`apply_stream_batch` (the report
aggregator's handler). The records of a batch are summed per cell; each cell gets one
conditional ``UpdateItem``, no transaction and no write to the records themselves. A cell
refuses records it has already added (their sequence numbers are at or below its checkpoint for
their partition key), so a batch delivered again, retried from a failed record, or racing
``aigw reports catch-up`` adds each record once.

``aigw reports catch-up`` (:func:`catch_up`) repairs what the aggregator missed: for a day the
stream still holds it reads the stream itself, in order, and applies the team's records of that
day the same way; for a closed day (:data:`CLOSED_AFTER_SECONDS`) it recounts the day from its
records and seals the cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from aigw import clock
from aigw.errors import ServiceUnavailable
from aigw.table import deserialize, gateway_table
from aigw.usage import cells
from aigw.usage.cells import Counters, Dims, MalformedRecord

logger = Logger(service="aigw-report-aggregator")

# A day's cells can still change while the stream may deliver records of that day: records are
# written within minutes of their call and the stream keeps them 24 hours. After this long past
# the day's end, catch-up recounts the day from its records instead of replaying the stream.
CLOSED_AFTER_SECONDS = 2 * 86_400
# Attempts at one cell when another reader moves its checkpoint between our tries.
_CELL_ATTEMPTS = 5


@dataclass(frozen=True)
class Delivered:
    """A usage record as the stream delivered it: where it sits in the stream and what it adds."""

    index: int  # position in its batch
    sequence: str  # the stream's SequenceNumber (a batch item failure names it)
    feed: str  # checkpoint attribute of its partition key
    dims: Dims
    counters: Counters

    @property
    def seq(self) -> int:
        return int(self.sequence)


def delivered(raw: Mapping[str, Any], index: int = 0) -> Delivered | None:
    """The usage record in a stream record (as Lambda delivers it), or None for other items.

    Raises :class:`MalformedRecord` for a usage record that cannot be counted."""
    stream = raw.get("dynamodb") or {}
    image = stream.get("NewImage")
    if raw.get("eventName", "INSERT") != "INSERT" or not image:
        return None
    item = deserialize(image)
    if item.get("type") != "usage":
        return None
    keys = stream.get("Keys") or {}
    usage_pk = deserialize(keys).get("pk") if keys else item.get("pk")
    sequence = str(stream.get("SequenceNumber") or "")
    if not isinstance(usage_pk, str) or not sequence.isdigit():
        raise MalformedRecord("stream record without a partition key or sequence number")
    dims, counters = cells.contribution(item)
    return Delivered(index, sequence, cells.feed_of(usage_pk), dims, counters)


@dataclass
class Outcome:
    """What applying a batch did: records newly counted, records found counted already, records
    that could not be counted (malformed, or their cell sealed), and where to retry from."""

    added: int = 0
    already: int = 0
    dropped: int = 0
    failed_at: int | None = None  # index of the first record to deliver again
    failed_sequence: str | None = None


@dataclass
class _CellWork:
    dims: Dims
    records: list[Delivered] = field(default_factory=list)


def _write_cell(work: _CellWork) -> tuple[int, int, int]:
    """Add the cell's records past its checkpoints; (added, already, dropped)."""
    pending = sorted(work.records, key=lambda d: d.seq)
    already = 0
    for _ in range(_CELL_ATTEMPTS):
        if not pending:
            return 0, already, 0
        feeds: dict[str, tuple[int, int]] = {}
        total = Counters()
        for record in pending:
            first, last = feeds.get(record.feed, (record.seq, record.seq))
            feeds[record.feed] = (min(first, record.seq), max(last, record.seq))
            total = total.plus(record.counters)
        refused = cells.add(work.dims, total, feeds)
        if refused is None:
            return len(pending), already, 0
        if refused.sealed:
            logger.warning(
                "usage records of a recounted (sealed) day not added",
                extra={"team_id": work.dims.team_id, "day": work.dims.day, "records": len(pending)},
            )
            return 0, already, len(pending)
        counted = [r for r in pending if r.seq <= refused.checkpoints.get(r.feed, -1)]
        already += len(counted)
        pending = [r for r in pending if r.seq > refused.checkpoints.get(r.feed, -1)]
    raise ServiceUnavailable("a report cell kept moving under this writer; retry")


def apply(records: Sequence[Delivered]) -> Outcome:
    """Add delivered records (in stream order) to their cells, one write per cell.

    Cells are written in the order of their first record; at the first cell that cannot be
    written (the table refuses or is unreachable) the rest waits, and the outcome names the
    first record not counted, so the stream delivers it (and what follows it) again."""
    outcome = Outcome()
    by_cell: dict[Dims, _CellWork] = {}
    seen: set[tuple[str, int]] = set()
    for record in records:
        if (record.feed, record.seq) in seen:  # the same stream record twice in one batch
            outcome.already += 1
            continue
        seen.add((record.feed, record.seq))
        by_cell.setdefault(record.dims, _CellWork(record.dims)).records.append(record)
    ordered = sorted(by_cell.values(), key=lambda w: min(r.index for r in w.records))
    for position, work in enumerate(ordered):
        try:
            added, already, dropped = _write_cell(work)
        except (ServiceUnavailable, ClientError) as exc:
            logger.warning("report cell not written", extra={"cell": work.dims.key, "error": str(exc)})
            first = min((r for w in ordered[position:] for r in w.records), key=lambda r: r.index)
            outcome.failed_at, outcome.failed_sequence = first.index, first.sequence
            return outcome
        outcome.added += added
        outcome.already += already
        outcome.dropped += dropped
    return outcome


def apply_stream_batch(raw_records: Iterable[Mapping[str, Any]]) -> Outcome:
    """One stream batch, as Lambda delivers it to the report aggregator."""
    parsed: list[Delivered] = []
    dropped = 0
    for index, raw in enumerate(raw_records):
        try:
            found = delivered(raw, index)
        except (MalformedRecord, KeyError, TypeError, ValueError) as exc:
            # It can never be counted: retrying would hold up every record behind it on its
            # shard (the stream keeps order) until it expires. Logged with its keys instead.
            stream = raw.get("dynamodb") or {}
            logger.error(
                "usage record cannot be counted in the reports",
                extra={
                    "error": str(exc),
                    "keys": stream.get("Keys"),
                    "sequence": stream.get("SequenceNumber"),
                },
            )
            dropped += 1
            continue
        if found is not None:
            parsed.append(found)
    outcome = apply(parsed)
    outcome.dropped += dropped
    return outcome


# ---- catch-up ----------------------------------------------------------------------------


def _closed(day: str) -> bool:
    end = datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() + 86_400
    return clock.now() >= end + CLOSED_AFTER_SECONDS


def catch_up(team_id: str, day: str) -> int:
    """Add the usage records of one team and UTC day that are missing from the reports; the
    number added. Safe at any time, also while the stream is delivering: a record is counted at
    most once, whoever adds it.

    A day the stream may still hold is replayed from the stream, in order, with the same
    checkpoints as the aggregator. A closed day (see :data:`CLOSED_AFTER_SECONDS`) is recounted
    from its records and its cells sealed."""
    if _closed(day):
        return recount(team_id, day)
    return replay(team_id, day)


def replay(team_id: str, day: str, *, reader: StreamReader | None = None) -> int:
    """Apply the records of ``team_id`` and ``day`` still on the table's stream; the number
    that were not counted yet."""
    reader = reader or StreamReader.for_table()
    added = 0
    for page in reader.pages():
        mine: list[Delivered] = []
        for raw in page:
            try:
                found = delivered(raw, len(mine))
            except (MalformedRecord, KeyError, TypeError, ValueError):
                continue
            if found is not None and found.dims.team_id == team_id and found.dims.day == day:
                mine.append(found)
        outcome = apply(mine)
        if outcome.failed_at is not None:
            raise ServiceUnavailable("The report cells could not be written; run catch-up again.")
        added += outcome.added
    return added


def recount(team_id: str, day: str) -> int:
    """Replace a closed day's cells with the sums of its records (sealed); the number of records
    the cells were missing (negative if they counted some twice)."""
    from aigw.usage.records import records_for_day

    one = date.fromisoformat(day)
    before = {c.dims: c.counters for c in cells.team_cells(team_id, one, one)}
    truth = cells.sum_records(r.model_dump(exclude_none=True) for r in records_for_day(team_id, day))
    for dims, counters in truth.items():
        cells.put_rebuilt(dims, counters)
    for dims in before.keys() - truth.keys():
        cells.delete(dims)
    return sum(c.calls for c in truth.values()) - sum(c.calls for c in before.values())


class StreamReader:
    """Reads a DynamoDB stream from its oldest record, shard by shard, parents before children
    (the order Lambda keeps), in pages of records as ``GetRecords`` returns them."""

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn

    @classmethod
    def for_table(cls) -> StreamReader:
        import boto3

        from aigw.config import settings

        cfg = settings()
        table = gateway_table()
        arn = table.client.describe_table(TableName=table.name)["Table"].get("LatestStreamArn")
        if not arn:
            raise ServiceUnavailable(f"table {table.name} has no stream")
        client = boto3.client("dynamodbstreams", region_name=cfg.region, endpoint_url=cfg.dynamodb_endpoint)
        return cls(client, arn)

    def shards(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            found.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        known = {s["ShardId"] for s in found}
        ordered: list[dict[str, Any]] = []
        placed: set[str] = set()
        while len(ordered) < len(found):
            ready = [
                s
                for s in found
                if s["ShardId"] not in placed
                and (s.get("ParentShardId") in placed or s.get("ParentShardId") not in known)
            ]
            ordered.extend(ready)
            placed.update(s["ShardId"] for s in ready)
        return ordered

    def pages(self) -> Iterable[list[dict[str, Any]]]:
        for shard in self.shards():
            iterator = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            while iterator:
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
                records = page.get("Records", [])
                if records:
                    yield [_as_lambda(r, self.stream_arn) for r in records]
                iterator = page.get("NextShardIterator")
                if not records:
                    break  # an open shard read to its end (a closed one ends with no iterator)


def _as_lambda(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        **{k: v for k, v in raw.items() if k != "dynamodb"},
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
