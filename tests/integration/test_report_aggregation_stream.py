"""Report aggregates through DynamoDB Local's real stream and the aggregator handler: calls
count once however often the stream delivers them, and racing deliveries do not double count."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aigw import cli, clock, keys, teams
from aigw.errors import ServiceUnavailable
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
    # at once, as a retry overlapping a slow first attempt would.
    from tests.helpers import streams

    poller = streams.poller()
    records: list[dict[str, Any]] = []
    poller.handler = lambda event, context: records.extend(event["Records"])
    poller.drain()
    assert len(records) == 24

    def deliver(part: list[dict[str, Any]]) -> None:
        batch = aggregation.StreamBatch(part)
        batch.apply_by_team()
        for raw in part:
            for attempt in range(5):  # a record that fails is retried, as the stream does
                try:
                    batch.aggregate(raw)
                    break
                except ServiceUnavailable:
                    assert attempt < 4

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(deliver, [records, records[:12], records[6:], records[::-1]]))
    _report_equals_records("acme")
    by_key = reports.usage_report("acme", "key", reports.Period.parse(_today(), _today())).rows
    assert {r.group: r.calls for r in by_key} == {"key_0": 12, "key_1": 12}


def test_a_local_table_kept_from_before_streams_gets_its_stream(dynamodb_local: Any) -> None:
    from aigw_local import template as tpl
    from aigw_local.dynamodb_local import client, ensure_table

    ddb = client(dynamodb_local.endpoint)
    definition = tpl.table_definition(tpl.load(), "aigw-it-before-streams")
    del definition["StreamSpecification"]
    ddb.create_table(**definition)
    assert not ddb.describe_table(TableName="aigw-it-before-streams")["Table"].get("LatestStreamArn")

    assert ensure_table(dynamodb_local.endpoint, "aigw-it-before-streams") is False
    table = ddb.describe_table(TableName="aigw-it-before-streams")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"]


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
