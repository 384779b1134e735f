"""The report aggregator on the table stream: every usage record counted exactly once, one write
per report cell a batch touches, and a batch that fails retried from the first record not
counted (docs/decisions/0018-report-cells.md)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from aigw import teams
from aigw.table import gateway_table
from aigw.usage import aggregation, cells, reports
from aigw.usage import records as usage_records
from aigw.usage.records import UsageRecord
from aigw_local.apigw import LambdaContext
from tests.helpers.streams import drain_reports, handler, poll_reports

DAY = "2026-03-09"


def _ms(hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{DAY}T{hour:02d}:00:00+00:00").timestamp() * 1000)


def _record(
    team: str,
    n: int,
    *,
    key_id: str = "key_a",
    model: str = "mock/echo",
    status: int = 200,
    **fields: Any,
) -> UsageRecord:
    usage = UsageRecord(
        request_id=f"req-{team}-{n}",
        team_id=team,
        key_id=key_id,
        model=model,
        provider="mock",
        route=fields.pop("route", "/v1/chat/completions"),
        status=status,
        prompt_tokens=100 + n,
        completion_tokens=n,
        cost_micro_usd=1_000 + n,
        created_at_ms=_ms() + n,
        **fields,
    )
    usage_records.record(usage)
    return usage


def _totals(team: str, group_by: reports.GroupBy = "day") -> reports.ReportRow:
    return reports.usage_report(team, group_by, reports.Period.parse(DAY, DAY)).totals


def _expected(records: list[UsageRecord]) -> tuple[int, int, int, int]:
    return (
        len(records),
        sum(1 for r in records if r.status >= 400),
        sum(r.prompt_tokens for r in records),
        sum(r.cost_micro_usd for r in records),
    )


def _seen(team: str) -> tuple[int, int, int, int]:
    totals = _totals(team)
    return (totals.calls, totals.errors, totals.prompt_tokens, totals.cost_micro_usd)


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = handler()(copy.deepcopy(event), LambdaContext("ReportAggregatorFunction", 60))
    return answer


def _one_event(deliveries: list[tuple[dict[str, Any], Any]]) -> dict[str, Any]:
    """Every record the drain delivered, as one stream batch."""
    return {"Records": [r for event, _ in deliveries for r in event["Records"]]}


def _sequence(event: dict[str, Any], index: int) -> str:
    return str(event["Records"][index]["dynamodb"]["SequenceNumber"])


@pytest.fixture
def cell_writes() -> Iterator[list[str]]:
    """The sort key of every write the table client sends to a report cell."""
    keys: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("pk", {}).get("S", "").startswith("AGG#"):
            keys.append(params["Key"]["sk"]["S"])

    events = gateway_table().client.meta.events
    events.register("before-parameter-build.dynamodb.UpdateItem", count)
    events.register("before-parameter-build.dynamodb.PutItem", count)
    yield keys
    events.unregister("before-parameter-build.dynamodb.UpdateItem", count)
    events.unregister("before-parameter-build.dynamodb.PutItem", count)


@pytest.fixture
def refuse_cells() -> Iterator[Callable[[Callable[[dict[str, Any]], bool]], Callable[[], None]]]:
    """Makes the table throttle writes to the report cells a predicate picks; returns the undo."""
    events = gateway_table().client.meta.events
    hooks: list[Callable[..., Any]] = []

    def remove(hook: Callable[..., Any]) -> None:
        events.unregister("before-call.dynamodb.UpdateItem", hook)

    def install(when: Callable[[dict[str, Any]], bool]) -> Callable[[], None]:
        def refuse(params: dict[str, Any], **_: Any) -> Any:
            body = json.loads(params["body"])
            if not body["Key"]["pk"]["S"].startswith("AGG#") or not when(body):
                return None
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            return AWSResponse("https://dynamodb.local", 400, {}, None), error

        hooks.append(refuse)
        events.register_first("before-call.dynamodb.UpdateItem", refuse)
        return lambda: remove(refuse)

    yield install
    for hook in hooks:
        remove(hook)


def _model_is(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: bool(body["ExpressionAttributeValues"][":model"]["S"] == name)


def test_records_reach_the_reports_only_through_the_stream() -> None:
    teams.create_team("acme")
    records = [_record("acme", n, status=502 if n == 3 else 200) for n in range(5)]
    assert _seen("acme") == (0, 0, 0, 0)  # recorded calls, stream not read yet
    drain_reports()
    assert _seen("acme") == _expected(records)
    # Nothing is written back to the records: the stream has nothing more for the aggregator.
    assert drain_reports() == []


def test_cache_hits_and_the_cost_they_saved_are_counted_per_model() -> None:
    teams.create_team("acme")
    _record("acme", 0)
    _record("acme", 1, cache_hit=True, cost_saved_micro_usd=700)
    _record("acme", 2, cache_hit=True, cost_saved_micro_usd=500, model="mock/embed", route="/v1/embeddings")
    drain_reports()
    totals = _totals("acme")
    assert (totals.calls, totals.cache_hits, totals.cost_saved_micro_usd) == (3, 2, 1_200)
    period = reports.Period.parse(DAY, DAY)
    by_model = {r.group: r for r in reports.usage_report("acme", "model", period).rows}
    assert (by_model["mock/echo"].cache_hits, by_model["mock/echo"].cost_saved_micro_usd) == (1, 700)
    by_route = {r.group: r for r in reports.usage_report("acme", "route", period).rows}
    assert (by_route["/v1/embeddings"].calls, by_route["/v1/embeddings"].cache_hits) == (1, 1)


def test_the_same_batch_delivered_twice_leaves_the_totals_unchanged() -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(6)]
    event = _one_event(drain_reports())
    assert len(event["Records"]) == 6
    assert _seen("acme") == _expected(records)

    for _ in range(2):  # Lambda delivers at least once: again, and again
        assert _invoke(event) == {"batchItemFailures": []}
        assert _seen("acme") == _expected(records)


def test_a_record_twice_in_one_batch_counts_once() -> None:
    from tests.helpers import streams

    teams.create_team("acme")
    records = [_record("acme", n) for n in range(3)]
    read: list[dict[str, Any]] = []
    poller = streams.poller()
    poller.handler = lambda event, context: read.extend(event["Records"])
    poller.drain()  # read the stream without counting anything
    assert _seen("acme") == (0, 0, 0, 0)
    assert _invoke({"Records": read + read[1:]}) == {"batchItemFailures": []}
    assert _seen("acme") == _expected(records)


def test_a_redelivered_batch_with_new_records_counts_only_the_new_ones(cell_writes: list[str]) -> None:
    teams.create_team("acme")
    first = [_record("acme", n) for n in range(4)]
    old = _one_event(drain_reports())
    later = [_record("acme", n) for n in range(4, 7)]
    new = _one_event(drain_reports())
    assert _seen("acme") == _expected(first + later)
    del cell_writes[:]

    # As after a partial failure: the stream hands the old records again with the new ones.
    assert _invoke({"Records": old["Records"] + new["Records"]}) == {"batchItemFailures": []}
    assert _seen("acme") == _expected(first + later)
    # One cell: its refusal says how far it has counted; nothing past that, so no second write.
    assert len(cell_writes) == 1


def test_a_batch_costs_one_write_per_cell_it_touches(cell_writes: list[str]) -> None:
    teams.create_team("acme")
    teams.create_team("beta")
    acme = [_record("acme", n, key_id=f"key_{n % 3}") for n in range(30)]
    beta = [_record("beta", n, model="openai/gpt-4o") for n in range(5)]
    del cell_writes[:]
    deliveries = drain_reports()
    assert [len(event["Records"]) for event, _ in deliveries] == [35]
    assert _seen("acme") == _expected(acme)
    assert _seen("beta") == _expected(beta)
    by_key = reports.usage_report("acme", "key", reports.Period.parse(DAY, DAY)).rows
    assert {r.group: r.calls for r in by_key} == {"key_0": 10, "key_1": 10, "key_2": 10}
    # 35 records in one batch: acme's three keys are three cells, beta's calls one.
    assert len(cell_writes) == 4


def test_a_batch_of_one_record_is_one_cell_write_and_nothing_else(cell_writes: list[str]) -> None:
    teams.create_team("acme")
    writes: list[str] = []

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        writes.append(model.name)

    events = gateway_table().client.meta.events
    _record("acme", 1)
    events.register("before-parameter-build.dynamodb", count)
    try:
        drain_reports()
    finally:
        events.unregister("before-parameter-build.dynamodb", count)
    assert writes == ["UpdateItem"]  # no transaction, no mark on the record, no read
    assert _seen("acme") == _expected(usage_records.records_for_day("acme", DAY))


def test_a_cell_the_table_refuses_is_retried_from_its_first_record_and_counts_once(
    refuse_cells: Callable[[Callable[[dict[str, Any]], bool]], Callable[[], None]],
) -> None:
    teams.create_team("acme")
    # Cells in stream order: echo (records 0, 2, 4), gpt (1, 3).
    records = [_record("acme", n, model="mock/echo" if n % 2 == 0 else "openai/gpt-4o") for n in range(5)]
    restore = refuse_cells(_model_is("openai/gpt-4o"))
    ((event, answer),) = poll_reports()
    # echo's cell is written (records 0, 2 and 4); gpt's is not: retry from record 1.
    assert answer == {"batchItemFailures": [{"itemIdentifier": _sequence(event, 1)}]}
    assert _seen("acme") == _expected([records[0], records[2], records[4]])

    restore()  # the stream delivers record 1 and everything after it again
    deliveries = drain_reports()
    assert [len(e["Records"]) for e, _ in deliveries] == [4]
    assert _seen("acme") == _expected(records)
    by_model = reports.usage_report("acme", "model", reports.Period.parse(DAY, DAY)).rows
    assert {r.group: r.calls for r in by_model} == {"mock/echo": 3, "openai/gpt-4o": 2}


def test_a_malformed_record_is_logged_and_the_others_count(monkeypatch: pytest.MonkeyPatch) -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(3)]
    event = _one_event(drain_reports())
    # Undo what the drain counted, then hand the batch again with the middle record broken.
    for shard in range(cells.CELL_SHARDS):
        for item in gateway_table().query("pk = :p", {":p": cells.cell_pk("acme", shard)}):
            gateway_table().delete(item["pk"], item["sk"])
    broken = copy.deepcopy(event)
    broken["Records"][1]["dynamodb"]["NewImage"]["prompt_tokens"] = {"S": "lots"}

    errors: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(aggregation.logger, "error", lambda msg, extra: errors.append((msg, extra)))
    answer = _invoke(broken)
    # It can never be counted: failing it would hold up its shard until it expires.
    assert answer == {"batchItemFailures": []}
    assert _seen("acme") == _expected([records[0], records[2]])
    ((message, extra),) = errors
    assert "cannot be counted" in message
    assert extra["sequence"] == _sequence(broken, 1)
    assert "prompt_tokens" in extra["error"]


def test_when_the_table_refuses_every_record_fails_and_a_retry_applies_them_once(
    refuse_cells: Callable[[Callable[[dict[str, Any]], bool]], Callable[[], None]],
) -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(3)]
    restore = refuse_cells(lambda body: True)
    ((event, answer),) = poll_reports()
    assert answer == {"batchItemFailures": [{"itemIdentifier": _sequence(event, 0)}]}
    assert _seen("acme") == (0, 0, 0, 0)

    restore()  # DynamoDB answers again: the stream retries from the first failed record
    drain_reports()
    assert _seen("acme") == _expected(records)
    assert _invoke(event) == {"batchItemFailures": []}
    assert _seen("acme") == _expected(records)


def test_records_of_two_partition_keys_in_one_cell_each_count_once() -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(4)]
    event = _one_event(drain_reports())
    # The same records as if written under two usage partition keys (the lease-sharded layout):
    # each key has its own checkpoint in the cell.
    second = copy.deepcopy(event["Records"][2:])
    for raw in second:
        other = {"S": raw["dynamodb"]["Keys"]["pk"]["S"] + "#other"}
        raw["dynamodb"]["Keys"]["pk"] = raw["dynamodb"]["NewImage"]["pk"] = other
    assert _invoke({"Records": second}) == {"batchItemFailures": []}
    assert _seen("acme")[0] == 6  # counted as the records of another key, once
    assert _invoke({"Records": second + event["Records"]}) == {"batchItemFailures": []}
    assert _seen("acme")[0] == 6  # both keys' records delivered again: nothing moves
    assert _expected(records)[0] == 4


def test_prompt_api_calls_reach_the_calling_team_and_the_api_cells() -> None:
    teams.create_team("acme")
    _record("acme", 1, route="/apis/summarize", api_slug="summarize")
    _record("acme", 2, route="/apis/summarize", api_slug="summarize", status=502, error_code="upstream_error")
    drain_reports()
    by_api = reports.usage_report("acme", "api", reports.Period.parse(DAY, DAY)).rows
    assert [(r.group, r.calls, r.errors) for r in by_api] == [("summarize", 2, 1)]
    day = datetime.fromisoformat(DAY).date()
    found = cells.api_cells("summarize", day, day)
    assert sorted((c.dims.team_id, c.dims.error_code or "", c.counters.calls) for c in found) == [
        ("acme", "", 1),
        ("acme", "upstream_error", 1),
    ]
