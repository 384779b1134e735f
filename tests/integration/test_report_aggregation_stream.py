"""Report aggregates through DynamoDB Local's real stream and the aggregator handler: calls
count once however often the stream delivers them, and racing deliveries do not double count."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aigw import cli, clock, keys, teams
from aigw.usage import aggregation, reports
from aigw.usage import records as usage_records
from aigw_local.apigw import LambdaContext
from tests.helpers.apigw import call
from tests.helpers.streams import drain_reports, handler

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "ping"}]}


def _today() -> str:
    return clock.iso(clock.now())[:10]


def _report_equals_records(team: str) -> None:
    day = _today()
    records = usage_records.records_for_day(team, day)
    totals = reports.usage_report(team, "day", reports.Period.parse(day, day)).totals
    assert totals.calls == len(records)
    assert totals.errors == sum(1 for r in records if r.status >= 400)
    assert totals.prompt_tokens == sum(r.prompt_tokens for r in records)
    assert totals.completion_tokens == sum(r.completion_tokens for r in records)
    assert totals.cost_micro_usd == sum(r.cost_micro_usd for r in records)


def _calls(team: str, count: int) -> str:
    teams.create_team(team)
    secret = keys.create_key(team).secret
    for _ in range(count):
        assert call("POST", "/v1/chat/completions", key=secret, body=CHAT).status == 200
    return secret


def _all_records(deliveries: list[tuple[dict[str, Any], Any]]) -> list[dict[str, Any]]:
    return [r for event, _ in deliveries for r in event["Records"]]


def test_real_calls_reach_the_reports_once_however_often_the_stream_delivers_them() -> None:
    secret = _calls("acme", 3)
    _calls("beta", 2)
    assert call("POST", "/v1/chat/completions", key=secret, body={**CHAT, "model": "nope/x"}).status == 404

    deliveries = drain_reports()
    assert [answer for _, answer in deliveries] == [{"batchItemFailures": []}] * len(deliveries)
    _report_equals_records("acme")
    _report_equals_records("beta")
    assert reports.usage_report("acme", "day", reports.Period.parse(_today(), _today())).totals.calls == 3

    again = {"Records": _all_records(deliveries)}
    answer = handler()(copy.deepcopy(again), LambdaContext("ReportAggregatorFunction", 60))
    assert answer == {"batchItemFailures": []}
    _report_equals_records("acme")
    _report_equals_records("beta")
    # The marks written on the records are MODIFY events, filtered out of the stream.
    assert drain_reports() == []


def test_a_redelivery_mixed_with_new_records_counts_only_the_new_ones() -> None:
    secret = _calls("acme", 2)
    old = _all_records(drain_reports())
    for _ in range(2):
        assert call("POST", "/v1/chat/completions", key=secret, body=CHAT).status == 200
    new = _all_records(drain_reports())
    assert len(old) == len(new) == 2
    answer = handler()({"Records": old + new}, LambdaContext("ReportAggregatorFunction", 60))
    assert answer == {"batchItemFailures": []}
    _report_equals_records("acme")
    assert reports.usage_report("acme", "day", reports.Period.parse(_today(), _today())).totals.calls == 4


def test_racing_deliveries_of_the_same_records_count_them_once() -> None:
    teams.create_team("acme")
    now = clock.now_ms()
    for i in range(24):
        usage_records.record(
            usage_records.UsageRecord(
                request_id=f"req-{i}",
                team_id="acme",
                key_id=f"key_{i % 2}",
                model="mock/echo",
                provider="mock",
                route="/v1/chat/completions",
                status=200,
                prompt_tokens=10 + i,
                completion_tokens=i,
                cost_micro_usd=5 * i + 1,
                created_at_ms=now + i,
            )
        )
    # Read the stream without applying it, then hand overlapping batches to four "containers"
    # at once, as a retry overlapping a slow first attempt would. Each starts at the stream's
    # first record not yet counted or before it, as Lambda delivers a shard (in order).
    from tests.helpers import streams

    poller = streams.poller()
    records: list[dict[str, Any]] = []
    poller.handler = lambda event, context: records.extend(event["Records"])
    poller.drain()
    assert len(records) == 24

    def deliver(part: list[dict[str, Any]]) -> None:
        for attempt in range(5):  # a batch that fails is retried from its failed record
            outcome = aggregation.apply_stream_batch(part)
            if outcome.failed_at is None:
                return
            assert attempt < 4
            part = part[outcome.failed_at :]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(deliver, [records, records[:12], records[:18], records[::-1]]))
    _report_equals_records("acme")
    by_key = reports.usage_report("acme", "key", reports.Period.parse(_today(), _today())).rows
    assert {r.group: r.calls for r in by_key} == {"key_0": 12, "key_1": 12}


def test_a_local_table_kept_from_before_streams_gets_its_stream(dynamodb_local: Any) -> None:
    import uuid

    from aigw_local import template as tpl
    from aigw_local.dynamodb_local import client, ensure_table

    ddb = client(dynamodb_local.endpoint)
    name = f"aigw-it-before-streams-{uuid.uuid4().hex[:8]}"
    definition = tpl.table_definition(tpl.load(), name)
    del definition["StreamSpecification"]
    ddb.create_table(**definition)
    assert not ddb.describe_table(TableName=name)["Table"].get("LatestStreamArn")

    assert ensure_table(dynamodb_local.endpoint, name) is False
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"]


def test_a_local_table_past_the_first_page_of_table_names_is_found(dynamodb_local: Any) -> None:
    """Fails on the old main: ensure_table looked for the name in ListTables' first page (100
    names), so late in a test run it tried to create an existing table."""
    import uuid

    from aigw_local.dynamodb_local import client, ensure_table

    ddb = client(dynamodb_local.endpoint)
    last = f"zzz-aigw-it-{uuid.uuid4().hex[:8]}"  # ListTables answers names in order
    assert ensure_table(dynamodb_local.endpoint, last) is True
    while len(ddb.list_tables(Limit=100)["TableNames"]) < 100 or last in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=f"aigw-filler-{uuid.uuid4().hex[:12]}",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert ensure_table(dynamodb_local.endpoint, last) is False


def test_catch_up_adds_what_the_stream_did_not_deliver_and_nothing_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _calls("acme", 3)
    day = _today()
    period = reports.Period.parse(day, day)
    assert reports.usage_report("acme", "day", period).totals.calls == 0  # the stream is not drained

    assert cli.main(["reports", "catch-up", "--team", "acme", "--day", day, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"team_id": "acme", "day": day, "added": 3}
    _report_equals_records("acme")
    assert aggregation.catch_up("acme", day) == 0

    # The stream delivers the same records late: they are in already and count once.
    deliveries = drain_reports()
    assert [answer for _, answer in deliveries] == [{"batchItemFailures": []}] * len(deliveries)
    _report_equals_records("acme")
    assert reports.usage_report("acme", "day", period).totals.calls == 3


def test_catch_up_refuses_a_day_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["reports", "catch-up", "--team", "acme", "--day", "yesterday"])
    assert exit_.value.code == 2
    assert "not a day" in capsys.readouterr().err


def _usage(team: str, n: int, created_at_ms: int, **fields: Any) -> usage_records.UsageRecord:
    usage = usage_records.UsageRecord(
        request_id=f"req-{team}-{n}",
        team_id=team,
        key_id=fields.pop("key_id", f"key_{n % 3}"),
        model=fields.pop("model", "mock/echo"),
        provider="mock",
        route=fields.pop("route", "/v1/chat/completions"),
        status=fields.pop("status", 200),
        prompt_tokens=10 + n,
        completion_tokens=n,
        cost_micro_usd=7 * n + 1,
        created_at_ms=created_at_ms + n,
        **fields,
    )
    usage_records.record(usage)
    return usage


def test_catch_up_racing_the_stream_counts_every_record_once() -> None:
    teams.create_team("acme")
    now = clock.now_ms()
    for n in range(60):
        _usage("acme", n, now)
    day = _today()
    added: list[int] = []
    # The aggregator (the runner's poller) and an operator's catch-up read the same stream at
    # the same time, each in order, each writing the same cells.
    with ThreadPoolExecutor(3) as pool:
        drained = pool.submit(drain_reports)
        for _ in range(2):
            added.append(pool.submit(aggregation.catch_up, "acme", day).result())
        drained.result()
    _report_equals_records("acme")
    assert reports.usage_report("acme", "day", reports.Period.parse(day, day)).totals.calls == 60
    assert aggregation.catch_up("acme", day) == 0
    assert 0 <= sum(added) <= 60


class WriteUnits:
    """Write capacity the table client's writes consumed, as DynamoDB Local reports it for
    single-item writes (which it reports correctly, index writes included)."""

    OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem")

    def __init__(self) -> None:
        self.by_pk: list[tuple[str, float]] = []
        self.other: list[str] = []

    def ask(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in self.OPERATIONS:
            params["ReturnConsumedCapacity"] = "TOTAL"
        elif model.name in ("TransactWriteItems", "BatchWriteItem"):
            self.other.append(model.name)

    def seen(self, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if model.name in self.OPERATIONS and "ConsumedCapacity" in parsed:
            pk = kwargs["context"].get("pk", "?")
            self.by_pk.append((pk, float(parsed["ConsumedCapacity"]["CapacityUnits"])))

    @staticmethod
    def key(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        found = params.get("Key") or params.get("Item") or {}
        context["pk"] = found.get("pk", {}).get("S", "?")

    def of(self, prefix: str) -> float:
        return sum(units for pk, units in self.by_pk if pk.startswith(prefix))


@pytest.fixture
def write_units() -> Any:
    from aigw.table import gateway_table

    units = WriteUnits()
    events = gateway_table().client.meta.events
    events.register("before-parameter-build.dynamodb", units.ask)
    events.register("before-parameter-build.dynamodb", units.key)
    events.register("after-call.dynamodb", units.seen)
    yield units
    events.unregister("before-parameter-build.dynamodb", units.ask)
    events.unregister("before-parameter-build.dynamodb", units.key)
    events.unregister("after-call.dynamodb", units.seen)


def test_a_batch_of_one_record_costs_one_write_unit_to_count(write_units: WriteUnits) -> None:
    teams.create_team("acme")
    _usage("acme", 1, clock.now_ms())
    assert write_units.of("USAGE#") == 1.0  # the record itself (written by the call)
    drain_reports()
    assert write_units.of("AGG#") == 1.0  # counting it: one cell, one write unit
    assert write_units.other == []  # no transaction anywhere
    _report_equals_records("acme")


def test_a_batch_of_many_records_of_one_cell_costs_one_write_unit(write_units: WriteUnits) -> None:
    teams.create_team("acme")
    now = clock.now_ms()
    for n in range(50):
        _usage("acme", n, now, key_id="key_a")
    drain_reports()
    assert write_units.of("AGG#") == 1.0
    _report_equals_records("acme")


def test_a_prompt_api_record_costs_its_cell_and_the_cells_index_entry(write_units: WriteUnits) -> None:
    teams.create_team("acme")
    _usage("acme", 1, clock.now_ms(), route="/apis/summarize", api_slug="summarize")
    assert write_units.of("USAGE#") == 1.0  # no index entry on the record any more
    drain_reports()
    assert write_units.of("AGG#") == 2.0  # the cell and its gsi1 entry (the API owner's view)


def test_a_cell_fed_by_eight_partition_keys_stays_under_one_kilobyte(write_units: WriteUnits) -> None:
    teams.create_team("a-team-with-a-rather-long-name")
    now = clock.now_ms()
    long_fields = {
        "model": "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0",
        "key_id": "key_0123456789abcdef",
        "route": "/apis/quarterly-board-summary-v2",
        "api_slug": "quarterly-board-summary-v2",
        "status": 502,
        "error_code": "upstream_unavailable",
    }
    record = _usage("a-team-with-a-rather-long-name", 1, now, **long_fields)
    item = usage_records.usage_item(record)
    for shard in range(8):  # as if written under eight lease-sharded partition keys
        raw = {
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {"pk": {"S": f"{item['pk']}#{shard}"}, "sk": {"S": item["sk"]}},
                "NewImage": {**_serialized(item), "pk": {"S": f"{item['pk']}#{shard}"}},
                "SequenceNumber": f"{10**30 + shard:040d}",  # the longest a sequence number gets
            },
        }
        assert aggregation.apply_stream_batch([raw]).added == 1
    # The last write (eight checkpoints, long names, the API's index keys) is still one unit;
    # with its index entry, two.
    assert write_units.by_pk[-1] == (write_units.by_pk[-1][0], 2.0)
    assert write_units.by_pk[-1][0].startswith("AGG#")


def _serialized(item: dict[str, Any]) -> dict[str, Any]:
    from aigw.table import serialize

    return serialize(item)


def test_catch_up_recounts_a_closed_day_from_its_records_and_seals_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime

    from aigw.table import gateway_table
    from aigw.usage import cells

    day = "2026-03-05"
    start_ms = int(datetime.fromisoformat(f"{day}T10:00:00+00:00").timestamp() * 1000)
    teams.create_team("acme")
    records = [_usage("acme", n, start_ms) for n in range(9)]
    event = {"Records": [r for e, _ in drain_reports() for r in e["Records"]]}
    # A cell went missing (as if its records ended in the on-failure queue): key_1's calls.
    one = datetime.fromisoformat(day).date()
    (lost,) = [c for c in cells.team_cells("acme", one, one) if c.dims.key_id == "key_1"]
    gateway_table().delete(*lost.dims.key)
    period = reports.Period.parse(day, day)
    assert reports.usage_report("acme", "day", period).totals.calls == 6

    monkeypatch.setattr(clock, "now", lambda: start_ms // 1000 + 4 * 86_400)  # the day is closed
    assert aggregation.catch_up("acme", day) == 3
    assert reports.usage_report("acme", "day", period).totals.calls == 9
    assert reports.usage_report("acme", "day", period).totals.cost_micro_usd == sum(
        r.cost_micro_usd for r in records
    )
    assert aggregation.catch_up("acme", day) == 0
    # A late delivery of the same records cannot count them again: the day's cells are sealed.
    answer = handler()(copy.deepcopy(event), LambdaContext("ReportAggregatorFunction", 60))
    assert answer == {"batchItemFailures": []}
    assert reports.usage_report("acme", "day", period).totals.calls == 9
