"""Report aggregates against real DynamoDB (Local), through its real stream and the aggregator
handler: concurrent calls of one team all count, and totals equal the records."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aigw import clock, keys, teams
from aigw.usage import records as usage_records
from aigw.usage import reports
from aigw.usage.records import UsageRecord
from tests.helpers.apigw import call
from tests.helpers.reports import usage_path
from tests.helpers.streams import drain_reports

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "ping"}]}


def _record(i: int, day_ms: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{i}",
        team_id="acme",
        key_id=f"key_{i % 3}",
        model=("mock/echo", "openai/gpt-4o")[i % 2],
        provider="mock",
        route="/v1/chat/completions",
        status=200 if i % 5 else 502,
        prompt_tokens=10 + i,
        completion_tokens=i,
        cost_micro_usd=3 * i + 1,
        created_at_ms=day_ms + i,
    )


def test_concurrent_records_all_count_and_totals_equal_the_records() -> None:
    teams.create_team("acme")
    now_ms = clock.now_ms()
    records = [_record(i, now_ms) for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(usage_records.record, records))
    usage_records.record(records[0])  # a retried write: refused by the condition, counted once
    drain_reports()

    day = clock.iso(now_ms // 1000)[:10]
    stored = usage_records.records_for_day("acme", day)
    assert len(stored) == 40
    period = reports.Period.parse(day, day)
    for group_by in ("day", "month", "model", "key", "route"):
        report = reports.usage_report("acme", group_by, period)  # type: ignore[arg-type]
        assert report.totals.calls == 40, group_by
        assert report.totals.errors == sum(1 for r in stored if r.status >= 400)
        assert report.totals.prompt_tokens == sum(r.prompt_tokens for r in stored)
        assert report.totals.cost_micro_usd == sum(r.cost_micro_usd for r in stored)
    by_key = reports.usage_report("acme", "key", period)
    assert {r.group: r.calls for r in by_key.rows} == {"key_0": 14, "key_1": 13, "key_2": 13}


def test_report_route_reads_the_aggregates_written_by_real_calls() -> None:
    teams.create_team("acme")
    secret = keys.create_key("acme").secret
    for _ in range(3):
        assert call("POST", "/v1/chat/completions", key=secret, body=CHAT).status == 200
    drain_reports()
    reply = call("GET", usage_path({"group_by": "model"}), key=secret)
    assert reply.status == 200
    (row,) = reply.json()["rows"]
    day = clock.iso(clock.now())[:10]
    records = usage_records.records_for_day("acme", day)
    assert (row["group"], row["calls"]) == ("mock/echo", 3)
    assert row["cost_micro_usd"] == sum(r.cost_micro_usd for r in records)
