"""GET /reports/usage: totals from the aggregates equal the usage records, per group and period."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from aigw import clock, keys, teams
from aigw.usage import records as usage_records
from aigw.usage.records import UsageRecord
from tests.helpers.apigw import call
from tests.helpers.reports import usage_path
from tests.helpers.streams import drain_reports

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}]}


def _ms(day: str, hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp() * 1000)


def _record(
    team: str, day: str, *, n: int, model: str = "mock/echo", key_id: str = "key_a", **kw: object
) -> None:
    fields: dict[str, object] = {
        "request_id": f"req-{team}-{day}-{model}-{key_id}-{n}",
        "team_id": team,
        "key_id": key_id,
        "model": model,
        "provider": model.split("/")[0],
        "route": "/v1/chat/completions",
        "status": 200,
        "prompt_tokens": 100 * n,
        "completion_tokens": 10 * n,
        "cost_micro_usd": 1_000 * n + 7,
        "created_at_ms": _ms(day),
        **kw,
    }
    usage_records.record(UsageRecord.model_validate(fields))


@pytest.fixture
def acme() -> str:
    teams.create_team("acme")
    return keys.create_key("acme", name="acme key").secret


@pytest.fixture
def admin() -> str:
    teams.create_team("admin")
    return keys.create_key("admin", role="admin").secret


@pytest.fixture
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: _ms("2026-03-10") // 1000)


def _report(key: str, **query: str) -> dict[str, object]:
    drain_reports()  # reports are eventually consistent: the stream first
    reply = call("GET", usage_path(query), key=key)
    assert reply.status == 200, reply.body
    data: dict[str, object] = reply.json()
    return data


def test_totals_equal_the_sum_of_the_usage_records_after_real_calls(acme: str) -> None:
    for text in ("one", "two words", "three little words"):
        assert (
            call(
                "POST", CHAT, key=acme, body={**HELLO, "messages": [{"role": "user", "content": text}]}
            ).status
            == 200
        )
    failed = call("POST", CHAT, key=acme, body={**HELLO, "model": "openai/gpt-4o-mini"})
    assert failed.status == 502
    day = clock.iso(clock.now())[:10]
    records = usage_records.records_for_day("acme", day)
    assert len(records) == 4

    report = _report(acme, group_by="day", **{"from": day, "to": day})
    totals = report["totals"]
    assert isinstance(totals, dict)
    assert totals["calls"] == 4
    assert totals["errors"] == 1
    assert totals["prompt_tokens"] == sum(r.prompt_tokens for r in records)
    assert totals["completion_tokens"] == sum(r.completion_tokens for r in records)
    assert totals["cost_micro_usd"] == sum(r.cost_micro_usd for r in records) > 0
    by_model = _report(acme, group_by="model", **{"from": day, "to": day})["rows"]
    assert isinstance(by_model, list)
    assert {r["group"]: r["calls"] for r in by_model} == {"mock/echo": 3, "openai/gpt-4o-mini": 1}


def test_a_retried_record_write_is_not_counted_twice(acme: str, fixed_today: None) -> None:
    _record("acme", "2026-03-09", n=1)
    _record("acme", "2026-03-09", n=1)  # same request id: a retry of the same write
    (row,) = [r for r in _report(acme, group_by="day", **{"from": "2026-03-09", "to": "2026-03-09"})["rows"]]  # type: ignore[union-attr]
    assert (row["calls"], row["cost_micro_usd"]) == (1, 1_007)
    assert len(usage_records.records_for_day("acme", "2026-03-09")) == 1


def test_group_by_day_fills_the_range_and_month_sums_days(acme: str, fixed_today: None) -> None:
    _record("acme", "2026-02-27", n=1)
    _record("acme", "2026-02-28", n=2)
    _record("acme", "2026-03-01", n=3)
    _record("acme", "2026-03-10", n=4)
    days = _report(acme, group_by="day", **{"from": "2026-02-27", "to": "2026-03-02"})
    rows = days["rows"]
    assert isinstance(rows, list)
    assert [(r["group"], r["calls"], r["prompt_tokens"]) for r in rows] == [
        ("2026-02-27", 1, 100),
        ("2026-02-28", 1, 200),
        ("2026-03-01", 1, 300),
        ("2026-03-02", 0, 0),
    ]
    # A whole month comes from its month item; a cut one from its days: both equal the records.
    months = _report(acme, group_by="month", **{"from": "2026-02", "to": "2026-03"})["rows"]
    assert isinstance(months, list)
    assert [(r["group"], r["prompt_tokens"]) for r in months] == [("2026-02", 300), ("2026-03", 700)]
    cut = _report(acme, group_by="month", **{"from": "2026-02-28", "to": "2026-03-09"})["rows"]
    assert isinstance(cut, list)
    assert [(r["group"], r["prompt_tokens"]) for r in cut] == [("2026-02", 200), ("2026-03", 300)]
    # Default period: the 30 days up to today.
    default = _report(acme)
    assert (default["start"], default["end"]) == ("2026-02-09", "2026-03-10")
    assert default["totals"]["calls"] == 4  # type: ignore[index]


def test_group_by_model_key_and_route(acme: str, fixed_today: None) -> None:
    _record("acme", "2026-03-01", n=1, model="mock/echo", key_id="key_a")
    _record("acme", "2026-03-02", n=2, model="openai/gpt-4o", key_id="key_b")
    _record("acme", "2026-03-03", n=3, model="openai/gpt-4o", key_id="key_a", route="/apis/summarize")
    window = {"from": "2026-03-01", "to": "2026-03-10"}
    by_model = {r["group"]: r["cost_micro_usd"] for r in _report(acme, group_by="model", **window)["rows"]}  # type: ignore[union-attr]
    assert by_model == {"openai/gpt-4o": 2_007 + 3_007, "mock/echo": 1_007}
    by_key = {r["group"]: r["calls"] for r in _report(acme, group_by="key", **window)["rows"]}  # type: ignore[union-attr]
    assert by_key == {"key_a": 2, "key_b": 1}
    by_route = {r["group"]: r["calls"] for r in _report(acme, group_by="route", **window)["rows"]}  # type: ignore[union-attr]
    assert by_route == {"/v1/chat/completions": 2, "/apis/summarize": 1}
    by_api = {r["group"]: r["calls"] for r in _report(acme, group_by="api", **window)["rows"]}  # type: ignore[union-attr]
    assert by_api == {"summarize": 1}
    # The range bounds the categories too: only 2026-03-02 counts here.
    narrow = _report(acme, group_by="model", **{"from": "2026-03-02", "to": "2026-03-02"})["rows"]
    assert [(r["group"], r["calls"]) for r in narrow] == [("openai/gpt-4o", 1)]  # type: ignore[union-attr]


def test_csv_export_has_a_header_and_one_row_per_group(acme: str, fixed_today: None) -> None:
    _record("acme", "2026-03-01", n=1, model="mock/echo")
    _record("acme", "2026-03-01", n=2, model="=cmd|evil")
    drain_reports()
    reply = call(
        "GET",
        usage_path({"group_by": "model", "from": "2026-03-01", "to": "2026-03-01", "format": "csv"}),
        key=acme,
    )
    assert reply.status == 200
    assert reply.header(
        "Content-Type",
    ).startswith("text/csv")  # type: ignore[union-attr]
    assert "attachment" in (reply.header("Content-Disposition") or "")
    rows = list(csv.DictReader(io.StringIO(reply.body)))
    assert [r["model"] for r in rows] == ["'=cmd|evil", "mock/echo"]
    assert rows[1]["cost_usd"] == "0.001007"
    assert rows[0]["cost_micro_usd"] == "2007"


def test_team_keys_see_only_their_team_and_admins_any(acme: str, admin: str, fixed_today: None) -> None:
    teams.create_team("other")
    _record("other", "2026-03-01", n=5)
    _record("acme", "2026-03-01", n=1)
    refused = call("GET", usage_path({"team": "other"}), key=acme)
    assert refused.status == 403
    assert refused.json()["code"] == "other_team"
    assert call("GET", usage_path({"group_by": "team"}), key=acme).status == 403
    assert _report(admin, team="other")["totals"]["prompt_tokens"] == 500  # type: ignore[index]
    assert call("GET", usage_path({"team": "nope"}), key=admin).status == 404
    per_team = {r["group"]: r["calls"] for r in _report(admin, group_by="team")["rows"]}  # type: ignore[union-attr]
    assert per_team == {"acme": 1, "other": 1, "admin": 0}
    assert call("GET", "/reports/usage").status == 401


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-03-01"}, "from"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(acme: str, query: dict[str, str], param: str) -> None:
    reply = call("GET", usage_path(query), key=acme)
    assert reply.status == 400, reply.body
    assert reply.json()["param"] == param


def test_whole_months_and_ragged_ends_add_up_to_the_days(acme: str, fixed_today: None) -> None:
    for n, day in enumerate(
        ["2025-12-31", "2026-01-01", "2026-01-31", "2026-02-14", "2026-03-05", "2026-03-06"], 1
    ):
        _record("acme", day, n=n, model=f"m/{n % 2}")
    # Jan 1-31 and Feb are whole months (month items); Dec 31 and Mar 1-5 are ragged (day items).
    window = {"from": "2025-12-31", "to": "2026-03-05"}
    by_model = {r["group"]: r["prompt_tokens"] for r in _report(acme, group_by="model", **window)["rows"]}  # type: ignore[union-attr]
    assert by_model == {"m/1": 100 + 300 + 500, "m/0": 200 + 400}
    by_day = _report(acme, group_by="day", **window)["totals"]
    assert by_day["prompt_tokens"] == 1500  # type: ignore[index]
    months = _report(acme, group_by="month", **window)["rows"]
    assert [(r["group"], r["calls"]) for r in months] == [  # type: ignore[union-attr]
        ("2025-12", 1),
        ("2026-01", 2),
        ("2026-02", 1),
        ("2026-03", 1),
    ]
