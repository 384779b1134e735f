"""Usage and cost reports, served from the report cells kept up to date from the usage records.

Every usage record adds its counters to one report cell (:mod:`aigw.usage.cells`: one team, UTC
day and combination of model, key, route, prompt API and error code), off the request path,
from the table's stream, exactly once (:mod:`aigw.usage.aggregation`): totals equal the sum of
the records once the stream has caught up, typically within a second or two of a call. A report
reads the cells of its days (a few ``Query`` calls) and sums them by the group asked for.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from aigw import clock
from aigw.errors import InvalidRequest, PermissionDenied
from aigw.keys import ApiKey
from aigw.usage import cells
from aigw.usage.cells import COUNTERS, Counters, Dims

GroupBy = Literal["day", "month", "model", "key", "route", "api", "team"]
GROUP_BYS: tuple[str, ...] = ("day", "month", "model", "key", "route", "api", "team")

MAX_DAYS = 400


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
    def of(cls, counters: Counters) -> Totals:
        return cls(**{c: getattr(counters, c) for c in COUNTERS})


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


def _group(dims: Dims, group_by: GroupBy) -> str | None:
    """The row a cell's counters go to; None when the cell has no value for that group (calls
    that were not to a prompt API, grouped by API)."""
    if group_by == "day":
        return dims.day
    if group_by == "month":
        return dims.day[:7]
    if group_by == "model":
        return dims.model
    if group_by == "key":
        return dims.key_id
    if group_by == "route":
        return dims.route
    return dims.api_slug  # "api"


def usage_report(team_id: str | None, group_by: GroupBy, period: Period) -> UsageReport:
    """Counters of ``team_id`` (or, for ``group_by="team"``, of every team) over ``period``."""
    sums = _Sums()
    start, end = period.start.isoformat(), period.end.isoformat()
    if group_by == "team":
        from aigw import teams

        for team in teams.list_teams():
            sums.by_group[team.team_id] = Totals()
            for cell in cells.team_cells(team.team_id, period.start, period.end):
                sums.add(team.team_id, Totals.of(cell.counters))
    elif team_id is None:
        raise InvalidRequest("a team is needed for this report", param="team")
    else:
        if group_by == "day":
            sums.by_group.update((day, Totals()) for day in period.days())
        elif group_by == "month":
            sums.by_group.update((month, Totals()) for month in period.months())
        for cell in cells.team_cells(team_id, period.start, period.end):
            group = _group(cell.dims, group_by)
            if group is not None:
                sums.add(group, Totals.of(cell.counters))
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
