"""The report aggregator on the table stream: every usage record counted exactly once, records
of one team applied together, and a record that cannot be applied reported back on its own."""

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
from aigw.usage import records as usage_records
from aigw.usage import reports
from aigw.usage.records import UsageRecord
from aigw_local.apigw import LambdaContext
from tests.helpers.streams import drain_reports, handler, poll_reports

DAY = "2026-03-09"


def _ms(hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{DAY}T{hour:02d}:00:00+00:00").timestamp() * 1000)


def _record(
    team: str, n: int, *, key_id: str = "key_a", model: str = "mock/echo", status: int = 200
) -> UsageRecord:
    usage = UsageRecord(
        request_id=f"req-{team}-{n}",
        team_id=team,
        key_id=key_id,
        model=model,
        provider="mock",
        route="/v1/chat/completions",
        status=status,
        prompt_tokens=100 + n,
        completion_tokens=n,
        cost_micro_usd=1_000 + n,
        created_at_ms=_ms() + n,
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


@pytest.fixture
def transactions() -> Iterator[list[int]]:
    """The item count of every TransactWriteItems the table client sends."""
    sizes: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["TransactItems"]))

    events = gateway_table().client.meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", count)
    yield sizes
    events.unregister("before-parameter-build.dynamodb.TransactWriteItems", count)


def _failing_transactions(when: Callable[[int], bool]) -> Callable[..., Any]:
    """A before-call hook answering TransactWriteItems of matching size with throttling."""

    def refuse(params: dict[str, Any], **_: Any) -> Any:
        if not when(len(json.loads(params["body"])["TransactItems"])):
            return None
        error = {
            "Error": {
                "Code": "ThrottlingException",
                "Message": "Rate of requests exceeds the allowed throughput",
            }
        }
        return AWSResponse("https://dynamodb.local", 400, {}, None), error

    return refuse


@pytest.fixture
def refuse_transactions() -> Iterator[Callable[[Callable[[int], bool]], Callable[[], None]]]:
    """Makes the table throttle TransactWriteItems of some sizes; returns the undo."""
    events = gateway_table().client.meta.events
    hooks: list[Callable[..., Any]] = []

    def remove(hook: Callable[..., Any]) -> None:
        events.unregister("before-call.dynamodb.TransactWriteItems", hook)

    def install(when: Callable[[int], bool]) -> Callable[[], None]:
        hook = _failing_transactions(when)
        hooks.append(hook)
        events.register_first("before-call.dynamodb.TransactWriteItems", hook)
        return lambda: remove(hook)

    yield install
    for hook in hooks:
        remove(hook)


def test_records_reach_the_reports_only_through_the_stream() -> None:
    teams.create_team("acme")
    records = [_record("acme", n, status=502 if n == 3 else 200) for n in range(5)]
    assert _seen("acme") == (0, 0, 0, 0)  # settled calls, stream not read yet
    drain_reports()
    assert _seen("acme") == _expected(records)
    # The marks on the records are MODIFY events: the filter keeps them from the aggregator.
    assert drain_reports() == []


def test_the_same_batch_delivered_twice_leaves_the_totals_unchanged() -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(6)]
    event = _one_event(drain_reports())
    assert len(event["Records"]) == 6
    assert _seen("acme") == _expected(records)

    for _ in range(2):  # Lambda delivers at least once: again, and again
        assert _invoke(event) == {"batchItemFailures": []}
        assert _seen("acme") == _expected(records)


def test_a_redelivered_batch_with_new_records_counts_only_the_new_ones(transactions: list[int]) -> None:
    teams.create_team("acme")
    first = [_record("acme", n) for n in range(4)]
    old = _one_event(drain_reports())
    later = [_record("acme", n) for n in range(4, 7)]
    new = _one_event(drain_reports())
    assert _seen("acme") == _expected(first + later)
    del transactions[:]

    # As after a partial failure: the stream hands the old records again with the new ones.
    assert _invoke({"Records": old["Records"] + new["Records"]}) == {"batchItemFailures": []}
    assert _seen("acme") == _expected(first + later)
    # One team-wide try cancelled by the set marks, nothing left to retry: no per-record writes.
    assert len(transactions) == 1


def test_records_of_one_team_go_in_one_transaction(transactions: list[int]) -> None:
    teams.create_team("acme")
    teams.create_team("beta")
    acme = [_record("acme", n, key_id=f"key_{n % 3}") for n in range(30)]
    beta = [_record("beta", n, model="openai/gpt-4o") for n in range(5)]
    del transactions[:]  # the record writes themselves are single puts, not transactions
    deliveries = drain_reports()
    assert sum(len(e["Records"]) for e, _ in deliveries) == 35
    assert _seen("acme") == _expected(acme)
    assert _seen("beta") == _expected(beta)
    by_key = reports.usage_report("acme", "key", reports.Period.parse(DAY, DAY)).rows
    assert {r.group: r.calls for r in by_key} == {"key_0": 10, "key_1": 10, "key_2": 10}
    # 35 records, two transactions: 30 marks + 12 aggregate items, 5 marks + 8 aggregate items.
    assert sorted(transactions) == [5 + 8, 30 + 12]


def test_a_busy_team_is_cut_at_the_transaction_item_limit(transactions: list[int]) -> None:
    teams.create_team("acme")
    records = [_record("acme", n, key_id=f"key_{n % 3}") for n in range(100)]
    del transactions[:]
    drain_reports()
    assert _seen("acme") == _expected(records)
    assert all(size <= 100 for size in transactions)
    assert sum(transactions) == 100 + 2 * 12  # every record marked once, two runs of 12 aggregates
    assert len(transactions) == 2


def test_a_team_transaction_that_fails_falls_back_to_one_record_at_a_time(
    transactions: list[int], refuse_transactions: Callable[[Callable[[int], bool]], Callable[[], None]]
) -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(4)]
    refuse_transactions(lambda size: size > 8 + 1)  # the team-wide transaction is throttled
    del transactions[:]
    deliveries = drain_reports()
    assert [answer for _, answer in deliveries] == [{"batchItemFailures": []}]
    assert _seen("acme") == _expected(records)
    assert transactions == [4 + 8, 1 + 8, 1 + 8, 1 + 8, 1 + 8]  # the team-wide try, then each alone


def test_a_malformed_record_is_reported_alone_and_the_others_count() -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(3)]
    event = _one_event(drain_reports())
    # Undo what the drain applied, then hand the batch again with the middle record broken.
    for item in gateway_table().query("pk = :p", {":p": reports.agg_pk("acme")}):
        gateway_table().delete(item["pk"], item["sk"])
    for usage in records:
        key = usage_records.usage_item(usage)
        gateway_table().update(key["pk"], key["sk"], expression="REMOVE aggregated_at")
    broken = copy.deepcopy(event)
    broken["Records"][1]["dynamodb"]["NewImage"]["prompt_tokens"] = {"S": "lots"}

    answer = _invoke(broken)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": broken["Records"][1]["dynamodb"]["SequenceNumber"]}]
    }
    assert _seen("acme") == _expected([records[0], records[2]])


def test_when_the_table_refuses_every_record_fails_and_a_retry_applies_them_once(
    refuse_transactions: Callable[[Callable[[int], bool]], Callable[[], None]],
) -> None:
    teams.create_team("acme")
    records = [_record("acme", n) for n in range(3)]
    restore = refuse_transactions(lambda size: True)
    ((event, answer),) = poll_reports()
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert _seen("acme") == (0, 0, 0, 0)

    restore()  # DynamoDB answers again: the stream retries from the first failed record
    drain_reports()
    assert _seen("acme") == _expected(records)
    assert _invoke(event) == {"batchItemFailures": []}
    assert _seen("acme") == _expected(records)
