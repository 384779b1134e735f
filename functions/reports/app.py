"""Usage and cost reports: GET /reports/usage, as JSON or CSV, from the aggregates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import web
from aigw.usage import reports
from aigw.usage.reports import GroupBy

logger = Logger(service="aigw-reports")
app = web.resolver()

CSV = "text/csv; charset=utf-8"


@app.get("/reports/usage")
def usage(
    group_by: Annotated[GroupBy, Query()] = "day",
    start: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    team: Annotated[str | None, Query(max_length=63)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response[str]:
    caller = web.current_key(app)
    team_id = reports.report_team(caller, team, group_by)
    report = reports.usage_report(team_id, group_by, reports.Period.parse(start, end))
    if format == "csv":
        name = f"aigw-usage-{team_id or 'all-teams'}-{group_by}-{report.start}-{report.end}.csv"
        return Response(
            200,
            CSV,
            reports.to_csv(report),
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if team_id is None:
        return web.json_response(report)
    from aigw.billing import machine_payments

    # Credits bought by agents (machine payments) in the same period, beside what was spent.
    top_ups = machine_payments.summary(team_id, report.start, report.end)
    return web.json_response({**report.model_dump(exclude_none=True), "machine_payments": top_ups})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context)
