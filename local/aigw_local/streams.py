"""DynamoDB stream event sources, run locally like Lambda's event source mappings.

Every ``Type: DynamoDB`` event of a function in template.yaml becomes a :class:`StreamSource`;
a :class:`StreamPoller` reads the table's stream through the DynamoDB Streams API of the same
endpoint (DynamoDB Local serves it, ``-inMemory`` too), keeps the records the source's
``FilterCriteria`` let through, and invokes the handler with real DynamoDB stream events of at
most ``BatchSize`` records, gathered for at most ``MaximumBatchingWindowInSeconds``. What Lambda
guarantees is kept: records of a shard are delivered in stream order, one batch at a time, a
child shard only after its parent is read to the end; a batch item failure
(``ReportBatchItemFailures``) or an exception retries from the failed record (after a backoff),
and after ``MaximumRetryAttempts`` (``-1``: until the records expire, as on Lambda) the rest of
the batch is dropped (logged where Lambda would send it to the on-failure destination).
A failing batch is retried whole rather than bisected, and ``ParallelizationFactor`` above 1 is
refused (Lambda would then deliver one shard's records concurrently).

:class:`StreamRunner` polls every source from one thread; invocations take the same lock as the
HTTP routes of the process (see :class:`aigw_local.server.Gateway`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from aigw_local import apigw
from aigw_local import template as tpl

Handler = Callable[[dict[str, Any], Any], Any]
Log = Callable[[str], None]
DEFAULT_POLL_SECONDS = 0.1
_SHARDS_REFRESH_SECONDS = 5.0
_MAX_BACKOFF_SECONDS = 5.0


class FilterError(ValueError):
    """A filter pattern this runner cannot evaluate: refused rather than ignored."""


# ---- event filtering (the subset of Lambda's filter rule syntax the template uses) ----------


def _check_pattern(pattern: Any, path: str) -> None:
    if not isinstance(pattern, dict) or not pattern:
        raise FilterError(f"filter pattern at {path or 'top'} must be a non-empty object")
    for name, rule in pattern.items():
        where = f"{path}.{name}" if path else name
        if isinstance(rule, dict):
            _check_pattern(rule, where)
            continue
        if not isinstance(rule, list) or not rule:
            raise FilterError(f"filter pattern at {where} must be an object or a non-empty list")
        for matcher in rule:
            if isinstance(matcher, dict):
                if set(matcher) != {"exists"} or not isinstance(matcher["exists"], bool):
                    raise FilterError(
                        f"filter operator {json.dumps(matcher)} at {where} is not supported by the local "
                        "runner (only value lists and 'exists'); extend aigw_local.streams"
                    )
            elif not isinstance(matcher, (str, int, float, bool)) and matcher is not None:
                raise FilterError(f"filter value {matcher!r} at {where} is not a string, number or null")


def parse_pattern(text: str) -> dict[str, Any]:
    """A ``FilterCriteria`` pattern, checked: value lists, nested objects and ``exists`` only."""
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"filter pattern is not JSON: {exc}") from exc
    _check_pattern(pattern, "")
    return pattern  # type: ignore[no-any-return]


_MISSING = object()


def _value_matches(rule: list[Any], value: Any) -> bool:
    for matcher in rule:
        if isinstance(matcher, dict):
            if matcher["exists"] == (value is not _MISSING):
                return True
            continue
        if value is _MISSING:
            continue
        candidates = value if isinstance(value, list) else [value]
        if any(type(c) is type(matcher) and c == matcher for c in candidates):
            return True
        # Numbers compare by value (an int pattern matches a float field and back).
        if _is_number(matcher) and any(_is_number(c) and c == matcher for c in candidates):
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether ``event`` (a stream record as Lambda sees it) matches ``pattern``: every field of
    the pattern must match; a list matches if any of its values (or ``exists``) does."""
    for name, rule in pattern.items():
        value = event.get(name, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(rule, dict):
            if not matches(rule, value if isinstance(value, dict) else {}):
                return False
        elif not _value_matches(rule, value):
            return False
    return True


# ---- sources from the template ---------------------------------------------------------------


@dataclass(frozen=True)
class StreamSource:
    """One ``Type: DynamoDB`` event of a function: what Lambda's event source mapping would do."""

    function: tpl.FunctionSpec
    event_name: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    batching_window: float = 0.0  # seconds the first record of a batch may wait for more
    max_retries: int = -1  # -1: until the record expires from the stream, as Lambda
    report_item_failures: bool = False
    filters: tuple[dict[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.function.logical_id}.{self.event_name}"

    def accepts(self, record: Mapping[str, Any]) -> bool:
        return not self.filters or any(matches(p, record) for p in self.filters)


def sources(template: dict[str, Any]) -> list[StreamSource]:
    """The DynamoDB stream event sources of the template (all on GatewayTable's stream)."""
    by_id = {spec.logical_id: spec for spec in tpl.functions(template)}
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if logical_id not in by_id:
            continue
        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") != "DynamoDB":
                continue
            props = event.get("Properties", {})
            if props.get("Stream") != {"Fn::GetAtt": ["GatewayTable", "StreamArn"]}:
                raise ValueError(f"{logical_id}.{event_name}: only GatewayTable's stream exists locally")
            position = props.get("StartingPosition", "TRIM_HORIZON")
            if position not in ("TRIM_HORIZON", "LATEST"):
                raise ValueError(f"{logical_id}.{event_name}: StartingPosition {position} is not supported")
            filters = tuple(
                parse_pattern(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])
            )
            if int(props.get("ParallelizationFactor", 1)) != 1:
                raise ValueError(f"{logical_id}.{event_name}: ParallelizationFactor above 1 is not emulated")
            found.append(
                StreamSource(
                    function=by_id[logical_id],
                    event_name=event_name,
                    starting_position=position,
                    batch_size=int(props.get("BatchSize", 100)),
                    batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    filters=filters,
                )
            )
    return found


# ---- reading a stream ------------------------------------------------------------------------


def streams_client(endpoint: str | None) -> Any:
    return boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
    )


def lambda_record(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it: JSON-ready, with the stream's ARN."""
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    record = {k: v for k, v in raw.items() if k != "dynamodb"}
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


@dataclass
class _Shard:
    shard_id: str
    parent: str | None
    iterator: str | None = None
    last_read: str | None = None  # sequence number of the last record read from the stream
    closed: bool = False  # the stream said so: no more records will come
    buffer: list[dict[str, Any]] = field(default_factory=list)  # read, filtered, not yet delivered
    waiting_since: float = 0.0  # when the oldest record in the buffer was read
    attempts: int = 0
    retry_at: float = 0.0


class StreamPoller:
    """Delivers one source's records from one table's stream to its handler, in order per shard."""

    def __init__(
        self,
        source: StreamSource,
        handler: Handler,
        *,
        client: Any,
        table_name: str,
        stream_arn: str,
        lock: threading.Lock | None = None,
        log: Log | None = None,
    ) -> None:
        self.source = source
        self.handler = handler
        self.client = client
        self.table_name = table_name
        self.stream_arn = stream_arn
        self.lock = lock or threading.Lock()
        self.log = log
        self._shards: dict[str, _Shard] = {}
        self._shards_at = 0.0
        self._first = True  # StartingPosition applies to the shards there at the start only

    def _refresh_shards(self) -> None:
        now = time.monotonic()
        if self._shards and now - self._shards_at < _SHARDS_REFRESH_SECONDS:
            return
        self._shards_at = now
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                if shard["ShardId"] not in self._shards:
                    iterator_type = self.source.starting_position if self._first else "TRIM_HORIZON"
                    found = _Shard(shard["ShardId"], shard.get("ParentShardId"))
                    found.iterator = self.client.get_shard_iterator(
                        StreamArn=self.stream_arn, ShardId=found.shard_id, ShardIteratorType=iterator_type
                    )["ShardIterator"]
                    self._shards[found.shard_id] = found
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        self._first = False

    def _readable(self, shard: _Shard) -> bool:
        parent = self._shards.get(shard.parent) if shard.parent else None
        # A child waits until its parent is read to the end, as Lambda keeps a key's order.
        return parent is None or (parent.closed and not parent.buffer)

    def _read(self, shard: _Shard) -> None:
        if shard.closed or len(shard.buffer) >= self.source.batch_size or shard.iterator is None:
            return
        try:
            page = self.client.get_records(ShardIterator=shard.iterator, Limit=1000)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                raise
            kwargs: dict[str, Any] = {"ShardIteratorType": "TRIM_HORIZON"}
            if shard.last_read:
                kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_read}
            shard.iterator = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard.shard_id, **kwargs
            )["ShardIterator"]
            return
        for raw in page.get("Records", []):
            shard.last_read = raw["dynamodb"]["SequenceNumber"]
            record = lambda_record(raw, self.stream_arn)
            if self.source.accepts(record):
                if not shard.buffer:
                    shard.waiting_since = time.monotonic()
                shard.buffer.append(record)
        shard.iterator = page.get("NextShardIterator")
        shard.closed = shard.iterator is None

    def _due(self, shard: _Shard, *, flush: bool) -> bool:
        """Whether the shard's buffer goes to the handler now: a full batch, a batch whose
        window has passed, a retry whose backoff has passed, or everything when flushing."""
        now = time.monotonic()
        if not shard.buffer or now < shard.retry_at:
            return False
        if flush or shard.attempts or len(shard.buffer) >= self.source.batch_size or shard.closed:
            return True
        return now - shard.waiting_since >= self.source.batching_window

    def poll(self, *, flush: bool = False) -> int:
        """Read what is new and deliver what is due; the number of records the handler accepted.

        ``flush``: deliver without waiting out the batching window (tests, shutdown)."""
        self._refresh_shards()
        delivered = 0
        for shard in list(self._shards.values()):
            if not self._readable(shard):
                continue
            self._read(shard)
            while self._due(shard, flush=flush):
                accepted = self._deliver(shard)
                delivered += accepted
                if shard.buffer and shard.attempts:
                    break  # a failed batch: retried on a later poll, after its backoff
                self._read(shard)  # a full batch went: what else is there
        return delivered

    def pending(self) -> bool:
        return any(s.buffer for s in self._shards.values())

    def drain(self, *, max_polls: int = 1000) -> int:
        """Poll until a read brings nothing new and nothing waits; the records delivered."""
        total = 0
        for _ in range(max_polls):
            delivered = self.poll(flush=True)
            total += delivered
            if not delivered and not self.pending():
                return total
            if not delivered:
                time.sleep(0.01)  # a failed batch waits out its backoff
        raise RuntimeError(f"stream source {self.source.name} did not drain in {max_polls} polls")

    def _deliver(self, shard: _Shard) -> int:
        batch = shard.buffer[: self.source.batch_size]
        event = {"Records": batch}
        context = apigw.LambdaContext(self.source.function.logical_id, self.source.function.timeout)
        started = time.monotonic()
        failed_at: int | None
        try:
            with self.lock:
                result = self.handler(event, context)
            failed_at = self._first_failure(batch, result)
        except Exception as exc:
            self._say(f"stream {self.source.name}: handler raised {type(exc).__name__}: {exc}")
            failed_at = 0
        elapsed = (time.monotonic() - started) * 1000
        accepted = len(batch) if failed_at is None else failed_at
        del shard.buffer[:accepted]
        shard.waiting_since = time.monotonic()
        if failed_at is None:
            shard.attempts = 0
            self._say(f"stream {self.source.name}: {len(batch)} record(s) ({elapsed:.0f} ms)")
            return accepted
        shard.attempts += 1
        if self.source.max_retries >= 0 and shard.attempts > self.source.max_retries:
            dropped = shard.buffer[: len(batch) - accepted]
            del shard.buffer[: len(dropped)]
            shard.attempts = 0
            numbers = [r["dynamodb"]["SequenceNumber"] for r in dropped]
            self._say(
                f"stream {self.source.name}: gave up on {len(dropped)} record(s) after "
                f"{self.source.max_retries} retries (deployed: to the on-failure destination): {numbers}"
            )
            return accepted
        backoff = min(_MAX_BACKOFF_SECONDS, 0.05 * 2**shard.attempts)
        shard.retry_at = time.monotonic() + backoff
        self._say(f"stream {self.source.name}: record {failed_at + 1} of {len(batch)} failed; retrying")
        return accepted

    def _first_failure(self, batch: list[dict[str, Any]], result: Any) -> int | None:
        """Index of the first record to retry, or None when the batch succeeded."""
        if not self.source.report_item_failures or not isinstance(result, dict):
            return None
        failures = result.get("batchItemFailures") or []
        if not failures:
            return None
        numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
        positions = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in numbers:
                return 0  # an unknown or empty identifier fails the whole batch, as Lambda does
            positions.append(numbers.index(identifier))
        return min(positions)

    def _say(self, line: str) -> None:
        if self.log:
            self.log(line)


def stream_arn(endpoint: str | None, table_name: str) -> str:
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    arn: str | None = ddb.describe_table(TableName=table_name)["Table"].get("LatestStreamArn")
    if not arn:
        raise RuntimeError(f"table {table_name} has no stream; it is created with one from template.yaml")
    return arn


class StreamRunner:
    """Polls every stream source of the template from one background thread."""

    def __init__(
        self, pollers: list[StreamPoller], *, interval: float = DEFAULT_POLL_SECONDS, log: Log | None = None
    ):
        self.pollers = pollers
        self.interval = interval
        self.log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aigw-streams", daemon=True)

    def start(self) -> StreamRunner:
        if self.pollers:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for poller in self.pollers:
                try:
                    poller.poll()
                except Exception as exc:
                    if self.log:
                        self.log(f"stream {poller.source.name}: poll failed: {type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)


def start(
    template: dict[str, Any],
    *,
    endpoint: str,
    table_name: str,
    handler_for: Callable[[tpl.FunctionSpec], Handler],
    lock: threading.Lock,
    interval: float = DEFAULT_POLL_SECONDS,
    log: Log | None = None,
) -> StreamRunner:
    """Start polling the table's stream for every DynamoDB event source of ``template``."""
    found = sources(template)
    arn = stream_arn(endpoint, table_name) if found else ""
    client = streams_client(endpoint)
    pollers = [
        StreamPoller(
            source,
            handler_for(source.function),
            client=client,
            table_name=table_name,
            stream_arn=arn,
            lock=lock,
            log=log,
        )
        for source in found
    ]
    return StreamRunner(pollers, interval=interval, log=log).start()
