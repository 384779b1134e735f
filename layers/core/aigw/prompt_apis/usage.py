"""Usage of one prompt API, for its owner: calls, tokens, cost and errors, per calling team.

Calls are billed to the caller's team; the report cells of those calls carry the API's slug and
sit in a per-API range of gsi1 (see :mod:`aigw.usage.cells`), read here. Like every report, it
follows the usage records through the table stream (typically within a second or two), and it
covers whole UTC days: ``days=1`` is today so far.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel

from aigw import clock
from aigw.errors import InvalidRequest
from aigw.keys import ApiKey
from aigw.prompt_apis import access

if TYPE_CHECKING:
    # Needed by report() alone: the prompt API routes that never read usage do not load it.
    from aigw.usage.cells import Cell

MAX_DAYS = 400


class Totals(BaseModel):
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_micro_usd: int = 0

    def add(self, cell: Cell) -> None:
        counters = cell.counters
        self.calls += counters.calls
        self.errors += counters.errors
        self.prompt_tokens += counters.prompt_tokens
        self.completion_tokens += counters.completion_tokens
        self.total_tokens += counters.total_tokens
        self.cost_micro_usd += counters.cost_micro_usd


class Report(BaseModel):
    slug: str
    since: str
    until: str
    totals: Totals
    by_team: dict[str, Totals]
    by_route: dict[str, Totals]
    errors_by_code: dict[str, int]


def summarise(slug: str, found: Iterable[Cell], since_ms: int, until_ms: int) -> Report:
    totals = Totals()
    by_team: dict[str, Totals] = defaultdict(Totals)
    by_route: dict[str, Totals] = defaultdict(Totals)
    errors: dict[str, int] = defaultdict(int)
    for cell in found:
        totals.add(cell)
        by_team[cell.dims.team_id].add(cell)
        by_route[cell.dims.route].add(cell)
        if cell.dims.error_code:
            errors[cell.dims.error_code] += cell.counters.calls
    return Report(
        slug=slug,
        since=clock.iso(since_ms / 1000),
        until=clock.iso(until_ms / 1000),
        totals=totals,
        by_team=dict(by_team),
        by_route=dict(by_route),
        errors_by_code=dict(errors),
    )


def report(key: ApiKey, slug: str, *, days: int = 30) -> Report:
    """The last ``days`` UTC days of calls to ``slug``, today included, for its managers."""
    from aigw.usage import cells

    access.require_manager(key, slug)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}", param="days")
    until_ms = clock.now_ms()
    today = datetime.fromtimestamp(until_ms / 1000, tz=UTC).date()
    first = today - timedelta(days - 1)
    since_ms = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000)
    return summarise(slug, cells.api_cells(slug, first, today), since_ms, until_ms)
