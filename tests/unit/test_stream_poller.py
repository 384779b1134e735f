"""The local runner's DynamoDB stream event sources: the template's filters, batches, and what
happens to a batch the handler fails, as Lambda's event source mappings do it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from aigw.config import settings
from aigw.table import gateway_table, serialize
from aigw_local import streams
from aigw_local import template as tpl


def _record(event_name: str, image: dict[str, Any]) -> dict[str, Any]:
    return {"eventName": event_name, "dynamodb": {"NewImage": serialize(image)}}


USAGE = {"pk": "USAGE#acme#2026-03-09", "sk": "1#req", "type": "usage", "team_id": "acme"}


def _source(logical_id: str) -> streams.StreamSource:
    return next(s for s in streams.sources(tpl.load()) if s.function.logical_id == logical_id)


def test_the_aggregator_sees_inserted_usage_records_only() -> None:
    source = _source("ReportAggregatorFunction")
    assert (source.starting_position, source.batch_size, source.report_item_failures) == (
        "TRIM_HORIZON",
        100,
        True,
    )
    # The settings the report cells rely on (docs/decisions/0018-report-cells.md): batches of
    # up to a second, and a shard never skipped (retried until its records expire).
    assert (source.batching_window, source.max_retries) == (1.0, -1)
    assert source.accepts(_record("INSERT", USAGE))
    # A later change to a record (none is made today) never reaches it twice.
    assert not source.accepts(_record("MODIFY", {**USAGE, "note": 1}))
    assert not source.accepts(_record("REMOVE", USAGE))
    assert not source.accepts(_record("INSERT", {**USAGE, "type": "aggregate"}))
    assert not source.accepts(
        {"eventName": "INSERT", "dynamodb": {"Keys": serialize({"pk": "x", "sk": "y"})}}
    )


def test_meter_reporting_sees_inserted_records_of_metered_plans_only() -> None:
    source = _source("MeterReportFunction")
    metered = {**USAGE, "meter_event_name": "aigw_tokens", "stripe_customer_id": "cus_1"}
    assert source.accepts(_record("INSERT", metered))
    assert not source.accepts(_record("MODIFY", {**metered, "note": 1}))
    # The local plan has no meter event: its records never reach Stripe's reporter.
    assert not source.accepts(_record("INSERT", USAGE))


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        ({"eventName": ["INSERT", "MODIFY"]}, {"eventName": "MODIFY"}, True),
        ({"eventName": ["INSERT"]}, {"eventName": "REMOVE"}, False),
        ({"eventName": ["INSERT"]}, {}, False),
        ({"a": {"b": [{"exists": True}]}}, {"a": {"b": 0}}, True),
        ({"a": {"b": [{"exists": True}]}}, {"a": {}}, False),
        ({"a": {"b": [{"exists": False}]}}, {"a": {}}, True),
        ({"a": {"b": [{"exists": False}]}}, {"a": {"b": "x"}}, False),
        ({"a": {"b": [{"exists": False}]}}, {}, True),
        ({"n": [5]}, {"n": 5.0}, True),
        ({"n": [5]}, {"n": "5"}, False),
        ({"tags": ["x"]}, {"tags": ["w", "x"]}, True),
        ({"v": [None]}, {"v": None}, True),
        ({"v": [None]}, {}, False),
        ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),
    ],
)
def test_filter_rules(pattern: dict[str, Any], record: dict[str, Any], expected: bool) -> None:
    assert streams.matches(streams.parse_pattern(json.dumps(pattern)), record) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        '{"eventName": [{"prefix": "INS"}]}',
        '{"eventName": [{"anything-but": ["REMOVE"]}]}',
        '{"n": [{"numeric": [">", 0]}]}',
        '{"a": [{"exists": "yes"}]}',
        '{"eventName": "INSERT"}',
        '{"eventName": []}',
        "not json",
    ],
)
def test_filter_rules_the_runner_cannot_evaluate_are_refused_loudly(pattern: str) -> None:
    with pytest.raises(streams.FilterError):
        streams.parse_pattern(pattern)


def test_a_template_with_an_unknown_filter_operator_does_not_start() -> None:
    template = tpl.load()
    event = template["Resources"]["ReportAggregatorFunction"]["Properties"]["Events"]["UsageStream"]
    event["Properties"]["FilterCriteria"]["Filters"][0]["Pattern"] = '{"eventName": [{"prefix": "I"}]}'
    with pytest.raises(streams.FilterError, match="prefix"):
        streams.sources(template)


# ---- delivery, against moto's stream ---------------------------------------------------------


class Recorder:
    """A stream handler that remembers its batches and fails the records it is told to."""

    def __init__(self, fail: set[str] | None = None, *, raise_error: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail or set()
        self.raise_error = raise_error

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.get_remaining_time_in_millis() > 0
        json.dumps(event)  # as Lambda sends it: plain JSON
        ids = [r["dynamodb"]["NewImage"]["sk"]["S"] for r in event["Records"]]
        self.batches.append(ids)
        for record in event["Records"]:
            assert (record["eventSource"], record["eventName"]) == ("aws:dynamodb", "INSERT")
            assert ":table/aigw-test/stream/" in record["eventSourceARN"]
            assert record["dynamodb"]["Keys"] == {
                "pk": record["dynamodb"]["NewImage"]["pk"],
                "sk": record["dynamodb"]["NewImage"]["sk"],
            }
        if self.raise_error:
            raise RuntimeError("the function crashed")
        failed = [r for r in event["Records"] if r["dynamodb"]["NewImage"]["sk"]["S"] in self.fail]
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failed]}


def _poller(handler: Recorder, **changes: Any) -> streams.StreamPoller:
    base = _source("ReportAggregatorFunction")
    # No batching window unless a test asks for one: each poll delivers what it read.
    source = streams.StreamSource(**{**base.__dict__, "batching_window": 0.0, **changes})
    cfg = settings()
    return streams.StreamPoller(
        source,
        handler,
        client=streams.streams_client(cfg.dynamodb_endpoint),
        table_name=cfg.table_name,
        stream_arn=streams.stream_arn(cfg.dynamodb_endpoint, cfg.table_name),
    )


def _write(*sks: str, kind: str = "usage") -> None:
    for sk in sks:
        gateway_table().put({"pk": "USAGE#acme#2026-03-09", "sk": sk, "type": kind})


def test_batches_keep_stream_order_and_respect_the_batch_size() -> None:
    recorder = Recorder()
    poller = _poller(recorder, batch_size=2)
    _write("r1", "r2")
    _write("other", kind="aggregate")
    _write("r3")
    gateway_table().update("USAGE#acme#2026-03-09", "r1", expression="SET note = :n", values={":n": 1})
    assert poller.drain() == 3
    assert recorder.batches == [["r1", "r2"], ["r3"]]
    _write("r4")
    assert poller.drain() == 1
    assert recorder.batches[-1] == ["r4"]


def test_a_batch_item_failure_is_retried_from_that_record_on() -> None:
    recorder = Recorder(fail={"r2"})
    poller = _poller(recorder)
    _write("r1", "r2", "r3")
    assert poller.poll() == 1  # r1 went through; r2 failed
    recorder.fail.clear()
    poller.drain()
    assert recorder.batches == [["r1", "r2", "r3"], ["r2", "r3"]]


def test_a_crashing_handler_gets_the_whole_batch_again() -> None:
    recorder = Recorder(raise_error=True)
    poller = _poller(recorder)
    _write("r1", "r2")
    assert poller.poll() == 0
    recorder.raise_error = False
    poller.drain()
    assert recorder.batches == [["r1", "r2"], ["r1", "r2"]]


def test_after_its_retries_a_failing_batch_is_dropped_and_the_stream_moves_on() -> None:
    lines: list[str] = []
    recorder = Recorder(fail={"r1"})
    poller = _poller(recorder, max_retries=2)
    poller.log = lines.append
    _write("r1", "r2")
    poller.drain()
    assert recorder.batches == [["r1", "r2"]] * 3  # the first try and two retries
    assert any("gave up on 2 record(s) after 2 retries" in line for line in lines)
    _write("r3")
    poller.drain()
    assert recorder.batches[-1] == ["r3"]


def test_latest_skips_what_was_written_before_the_start() -> None:
    _write("old")
    recorder = Recorder()
    poller = _poller(recorder, starting_position="LATEST")
    poller.poll()
    _write("new")
    poller.drain()
    assert recorder.batches == [["new"]]


def test_calls_on_the_local_plan_never_reach_the_meter_reporter(monkeypatch: pytest.MonkeyPatch) -> None:
    from aigw import clock, keys, teams
    from aigw.usage import records as usage_records
    from aigw_local.runner import LOCAL_DEFAULT_PLAN, seed_local_plan
    from tests.conftest import reset_core
    from tests.helpers import streams as drained
    from tests.helpers.apigw import call

    seed_local_plan()
    monkeypatch.setenv("DEFAULT_PLAN", LOCAL_DEFAULT_PLAN)
    reset_core()
    teams.create_team("acme")
    secret = keys.create_key("acme").secret
    chat = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    assert call("POST", "/v1/chat/completions", key=secret, body=chat).status == 200
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert record.meter_event_name is None
    # Without a Stripe key the runner's meter reporter would fail: it is never invoked.
    assert drained.poller("MeterReportFunction").drain() == 0
    assert drained.poller("ReportAggregatorFunction").drain() == 1


def test_records_wait_for_the_batching_window_unless_the_batch_is_full() -> None:
    recorder = Recorder()
    poller = _poller(recorder, batching_window=0.3, batch_size=3)
    _write("r1", "r2")
    assert poller.poll() == 0  # read, waiting for more (as Lambda gathers a batch)
    _write("r3")
    assert poller.poll() == 3  # the batch is full: it goes at once
    _write("r4")
    assert poller.poll() == 0
    time.sleep(0.35)
    assert poller.poll() == 1  # the window has passed
    _write("r5")
    assert poller.drain() == 1  # a drain (tests, shutdown) does not wait
    assert recorder.batches == [["r1", "r2", "r3"], ["r4"], ["r5"]]


def test_a_failing_batch_is_retried_until_it_succeeds_and_nothing_behind_it_overtakes_it() -> None:
    class FailsAFewTimes(Recorder):
        def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
            answer = super().__call__(event, context)
            if len(self.batches) <= 4:
                first = event["Records"][0]["dynamodb"]["SequenceNumber"]
                return {"batchItemFailures": [{"itemIdentifier": first}]}
            return answer

    recorder = FailsAFewTimes()
    poller = _poller(recorder, batch_size=2, max_retries=-1)
    _write("r1", "r2", "r3")
    poller.drain()
    # The first batch four times (failed), then in order, each record once after success.
    assert recorder.batches == [["r1", "r2"]] * 5 + [["r3"]]


class FakeStreams:
    """A DynamoDB Streams client over a fixed set of shards (to show lineage handling)."""

    def __init__(self, shards: list[tuple[str, str | None, list[str]]], stream_arn: str) -> None:
        self.shards = shards
        self.arn = stream_arn

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        listed = [{"ShardId": sid, **({"ParentShardId": p} if p else {})} for sid, p, _ in self.shards]
        return {"StreamDescription": {"Shards": listed}}

    def get_shard_iterator(self, ShardId: str, **_: Any) -> dict[str, str]:
        return {"ShardIterator": f"{ShardId}:0"}

    def get_records(self, ShardIterator: str, **_: Any) -> dict[str, Any]:
        shard_id, at = ShardIterator.rsplit(":", 1)
        (sks,) = [sks for sid, _, sks in self.shards if sid == shard_id]
        page = sks[int(at) : int(at) + 1]  # one record a page: the child is ready much earlier
        records = [
            {
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {
                    "Keys": serialize({"pk": "USAGE#acme#2026-03-09", "sk": sk}),
                    "NewImage": serialize({"pk": "USAGE#acme#2026-03-09", "sk": sk, "type": "usage"}),
                    "SequenceNumber": f"{shard_id[-1]}{sk[1:]:0>5}",
                },
            }
            for sk in page
        ]
        following = int(at) + len(page)
        return {
            "Records": records,
            "NextShardIterator": None if following >= len(sks) else f"{shard_id}:{following}",
        }


def test_a_child_shard_waits_until_its_parent_is_read_to_the_end() -> None:
    recorder = Recorder()
    base = _source("ReportAggregatorFunction")
    source = streams.StreamSource(**{**base.__dict__, "batching_window": 0.0})
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/aigw-test/stream/2026"
    # Listed child first: the order comes from the lineage, not from the listing.
    client = FakeStreams([("shard-2", "shard-1", ["r4", "r5"]), ("shard-1", None, ["r1", "r2", "r3"])], arn)
    poller = streams.StreamPoller(source, recorder, client=client, table_name="aigw-test", stream_arn=arn)
    poller.drain()
    assert [sk for batch in recorder.batches for sk in batch] == ["r1", "r2", "r3", "r4", "r5"]


def test_a_parallelization_factor_the_runner_cannot_keep_is_refused() -> None:
    template = tpl.load()
    event = template["Resources"]["ReportAggregatorFunction"]["Properties"]["Events"]["UsageStream"]
    event["Properties"]["ParallelizationFactor"] = 4
    with pytest.raises(ValueError, match="ParallelizationFactor"):
        streams.sources(template)
