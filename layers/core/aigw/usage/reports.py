"""Usage and cost reports, served from aggregates kept up to date from the usage records.

Every usage record adds its counters to a few aggregate items (see :func:`contributions`).
They are applied off the request path, from the table's stream, exactly once per record
(:mod:`aigw.usage.aggregation`): totals equal the sum of the records once the stream has
caught up, typically well under a second after a call. Reports read a handful of aggregate
items instead of scanning records.

=====================  ==========================  ==========================================
item                   pk                          sk
=====================  ==========================  ==========================================
aggregate              ``AGG#<team_id>``           ``<D|M>#<dim>#<bucket>[#<value>]``
=====================  ==========================  ==========================================

``D`` buckets are UTC days (``2026-11-25``), ``M`` buckets UTC months (``2026-11``); ``dim`` is
``all`` (the team's total, no value), ``model``, ``key``, ``route`` or ``api`` (the prompt API
called, for calls through ``/apis/<slug>`` only; the calling team pays and sees them). Putting
the dimension before the bucket makes "this dimension over a date range" one ``Query`` with
``BETWEEN``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from aigw import clock
from aigw.config import settings
from aigw.errors import InvalidRequest, PermissionDenied
from aigw.keys import ApiKey
from aigw.table import Item, gateway_table

if TYPE_CHECKING:
    from aigw.usage.records import UsageRecord

GroupBy = Literal["day", "month", "model", "key", "route", "api", "team"]
GROUP_BYS: tuple[str, ...] = ("day", "month", "model", "key", "route", "api", "team")
Dimension = Literal["all", "model", "key", "route", "api"]

COUNTERS: tuple[str, ...] = (
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micro_usd",
    "cache_hits",
    "cost_saved_micro_usd",
)
MAX_DAYS = 400
_DAY_SECONDS = 86_400


def agg_pk(team_id: str) -> str:
    return f"AGG#{team_id}"


def _agg_sk(period: Literal["D", "M"], dim: Dimension, bucket: str, value: str | None) -> str:
    sk = f"{period}#{dim}#{bucket}"
    return f"{sk}#{value}" if value is not None else sk


def _day_of(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Contribution:
    """What usage records add to one aggregate item: its key, descriptive attributes and counters.

    Contributions to the same item (same ``sk``) of one team sum with :meth:`plus`, so a batch of
    records updates each aggregate item once (:mod:`aigw.usage.aggregation`)."""

    team_id: str
    sk: str
    period: Literal["D", "M"]
    bucket: str
    dim: Dimension
    value: str | None
    ttl: int | None
    counters: tuple[int, ...]  # in COUNTERS order

    def plus(self, other: Contribution) -> Contribution:
        ttl = max(self.ttl, other.ttl) if self.ttl is not None and other.ttl is not None else self.ttl
        counters = tuple(a + b for a, b in zip(self.counters, other.counters, strict=True))
        return replace(self, ttl=ttl, counters=counters)

    def update(self) -> dict[str, Any]:
        """A TransactWriteItems ``Update`` that adds the counters to the aggregate item."""
        # Every attribute goes through a name placeholder: several are DynamoDB reserved words.
        attrs: dict[str, Any] = {
            "team_id": {"S": self.team_id},
            "type": {"S": "aggregate"},
            "bucket": {"S": self.bucket},
            "dim": {"S": self.dim},
        }
        if self.value is not None:
            attrs["dim_value"] = {"S": self.value}
        if self.ttl is not None:
            attrs["ttl"] = {"N": str(self.ttl)}
        names = {f"#{a}": a for a in [*attrs, *COUNTERS]}
        values = {f":{a}": v for a, v in attrs.items()}
        values.update(
            {f":{c}": {"N": str(amount)} for c, amount in zip(COUNTERS, self.counters, strict=True)}
        )
        expression = (
            "SET "
            + ", ".join(f"#{a} = :{a}" for a in attrs)
            + " ADD "
            + ", ".join(f"#{c} :{c}" for c in COUNTERS)
        )
        return {
            "Update": {
                "Key": {"pk": {"S": agg_pk(self.team_id)}, "sk": {"S": self.sk}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }


def contributions(record: UsageRecord) -> list[Contribution]:
    """What one usage record adds to its team's aggregates: a day and a month item per dimension.

    Day items expire with the records they summarise; month items are kept."""
    day = _day_of(record.created_at_ms)
    counters = (
        1,
        1 if record.status >= 400 else 0,
        record.prompt_tokens,
        record.completion_tokens,
        record.cached_tokens,
        record.cost_micro_usd,
        1 if record.cache_hit else 0,
        record.cost_saved_micro_usd,
    )
    day_ttl = record.created_at_ms // 1000 + settings().usage_retention_days * _DAY_SECONDS
    dims: list[tuple[Dimension, str | None]] = [
        ("all", None),
        ("model", record.model),
        ("key", record.key_id),
        ("route", record.route),
    ]
    from aigw.usage.records import api_slug_of  # metering imports this module

    slug = record.api_slug or api_slug_of(record.route)
    if slug:
        dims.append(("api", slug))
    periods: tuple[tuple[Literal["D", "M"], str, int | None], ...] = (
        ("D", day, day_ttl),
        ("M", day[:7], None),
    )
    return [
        Contribution(
            team_id=record.team_id,
            sk=_agg_sk(period, dim, bucket, value),
            period=period,
            bucket=bucket,
            dim=dim,
            value=value,
            ttl=ttl,
            counters=counters,
        )
        for period, bucket, ttl in periods
        for dim, value in dims
    ]


class Totals(BaseModel):
    model_config = ConfigDict(frozen=True)

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_micro_usd: int = 0
    # Answered from the response cache, and what those calls would have cost without it.
    cache_hits: int = 0
    cost_saved_micro_usd: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Totals) -> Totals:
        return Totals(**{c: getattr(self, c) + getattr(other, c) for c in COUNTERS})

    @classmethod
    def from_item(cls, item: Item) -> Totals:
        return cls(**{c: int(item.get(c, 0)) for c in COUNTERS})


class ReportRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    group: str
    calls: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    total_tokens: int
    cost_micro_usd: int
    cost_usd: str
    cache_hits: int = 0
    cost_saved_micro_usd: int = 0

    @classmethod
    def of(cls, group: str, totals: Totals) -> ReportRow:
        return cls(
            group=group,
            total_tokens=totals.total_tokens,
            cost_usd=usd(totals.cost_micro_usd),
            **totals.model_dump(),
        )


class UsageReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    team_id: str | None
    group_by: GroupBy
    start: str
    end: str
    rows: list[ReportRow]
    totals: ReportRow


def usd(micro: int) -> str:
    """Micro-USD as a decimal string with six places; exact, never through float."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


@dataclass(frozen=True)
class Period:
    """An inclusive range of UTC days."""

    start: date
    end: date

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, default_days: int = 30) -> Period:
        today = datetime.fromtimestamp(clock.now(), tz=UTC).date()
        end_day = _parse_day(end, "to", last=True) if end else today
        start_day = _parse_day(start, "from", last=False) if start else end_day - timedelta(default_days - 1)
        if start_day > end_day:
            raise InvalidRequest("'from' must not be after 'to'", param="from")
        if (end_day - start_day).days + 1 > MAX_DAYS:
            raise InvalidRequest(f"a report spans at most {MAX_DAYS} days", param="from")
        return cls(start_day, end_day)

    def days(self) -> list[str]:
        count = (self.end - self.start).days + 1
        return [(self.start + timedelta(i)).isoformat() for i in range(count)]

    def months(self) -> list[str]:
        found: list[str] = []
        for day in self.days():
            if day[:7] not in found:
                found.append(day[:7])
        return found


def _parse_day(value: str, param: str, *, last: bool) -> date:
    """``YYYY-MM-DD``, or ``YYYY-MM`` meaning the month's first (or, for ``to``, last) day."""
    try:
        if len(value) == 7:
            first = date.fromisoformat(value + "-01")
            if not last:
                return first
            return _month_end(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(
            f"'{param}' must be a date like 2026-11-25 or a month like 2026-11", param=param
        ) from exc


@dataclass
class _Sums:
    by_group: dict[str, Totals] = field(default_factory=dict)

    def add(self, group: str, totals: Totals) -> None:
        self.by_group[group] = self.by_group.get(group, Totals()).plus(totals)


def _query(team_id: str, low: str, high: str) -> list[Item]:
    # "~" sorts after every character used in buckets and values, closing the range.
    return gateway_table().query(
        "pk = :p AND sk BETWEEN :lo AND :hi",
        {":p": agg_pk(team_id), ":lo": low, ":hi": high + "~"},
    )


def _segments(period: Period) -> list[tuple[Literal["D", "M"], str, str]]:
    """The range as at most three sort-key ranges: whole months read from month items, the
    ragged ends from day items. A year by model is ~12 items per model, not ~365."""
    segments: list[tuple[Literal["D", "M"], str, str]] = []
    for month in period.months():
        first = max(period.start, date.fromisoformat(month + "-01"))
        last = min(period.end, _month_end(month))
        if first.day == 1 and last == _month_end(month):
            if segments and segments[-1][0] == "M":
                segments[-1] = ("M", segments[-1][1], month)
            else:
                segments.append(("M", month, month))
        elif segments and segments[-1][0] == "D":
            segments[-1] = ("D", segments[-1][1], last.isoformat())
        else:
            segments.append(("D", first.isoformat(), last.isoformat()))
    return segments


def _items(team_id: str, dim: Dimension, period: Period, *, days_only: bool = False) -> list[Item]:
    if days_only:
        return _query(team_id, f"D#{dim}#{period.start.isoformat()}", f"D#{dim}#{period.end.isoformat()}")
    items: list[Item] = []
    for kind, low, high in _segments(period):
        items.extend(_query(team_id, f"{kind}#{dim}#{low}", f"{kind}#{dim}#{high}"))
    return items


def usage_report(team_id: str | None, group_by: GroupBy, period: Period) -> UsageReport:
    """Counters of ``team_id`` (or, for ``group_by="team"``, of every team) over ``period``."""
    sums = _Sums()
    start, end = period.start.isoformat(), period.end.isoformat()
    if group_by == "team":
        from aigw import teams

        for team in teams.list_teams():
            sums.by_group[team.team_id] = Totals()
            for item in _items(team.team_id, "all", period):
                sums.add(team.team_id, Totals.from_item(item))
    elif team_id is None:
        raise InvalidRequest("a team is needed for this report", param="team")
    elif group_by == "day":
        for day in period.days():
            sums.by_group[day] = Totals()
        for item in _items(team_id, "all", period, days_only=True):
            sums.add(str(item["bucket"]), Totals.from_item(item))
    elif group_by == "month":
        for month in period.months():
            sums.by_group[month] = Totals()
        for item in _items(team_id, "all", period):
            sums.add(str(item["bucket"])[:7], Totals.from_item(item))
    else:
        for item in _items(team_id, group_by, period):
            sums.add(str(item["dim_value"]), Totals.from_item(item))
    rows = [ReportRow.of(group, totals) for group, totals in sums.by_group.items()]
    if group_by in ("day", "month"):
        rows.sort(key=lambda r: r.group)
    else:
        rows.sort(key=lambda r: (-r.cost_micro_usd, -r.calls, r.group))
    grand = Totals()
    for totals in sums.by_group.values():
        grand = grand.plus(totals)
    return UsageReport(
        team_id=None if group_by == "team" else team_id,
        group_by=group_by,
        start=start,
        end=end,
        rows=rows,
        totals=ReportRow.of("total", grand),
    )


def _month_end(month: str) -> date:
    following = (date.fromisoformat(month + "-28") + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def report_team(caller: ApiKey, requested: str | None, group_by: GroupBy) -> str | None:
    """Which team ``caller`` may report on: its own, or any one for an admin key."""
    if group_by == "team":
        if not caller.is_admin:
            raise PermissionDenied("Only admin keys can report across teams", code="admin_required")
        return None
    if requested is None or requested == caller.team_id:
        return caller.team_id
    if not caller.is_admin:
        raise PermissionDenied(
            "Team keys can only see their own team's usage", code="other_team", param="team"
        )
    from aigw import teams

    teams.get_team(requested)
    return requested


CSV_COLUMNS: tuple[str, ...] = (
    "group",
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "total_tokens",
    "cost_micro_usd",
    "cost_usd",
    "cache_hits",
    "cost_saved_micro_usd",
)


def to_csv(report: UsageReport) -> str:
    """The report as CSV: one row per group, the first column named after ``group_by``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([report.group_by, *CSV_COLUMNS[1:]])
    rows: Iterable[ReportRow] = report.rows
    for row in rows:
        writer.writerow([_csv_cell(getattr(row, c)) for c in CSV_COLUMNS])
    return out.getvalue()


def _csv_cell(value: object) -> str:
    text = str(value)
    # Spreadsheet formula injection: a group value (a route, a key name) must stay text.
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
