"""``aigw reports usage``: usage and cost from ``GET /reports/usage``, as a table, JSON or CSV.

Works with a team key (its own team) or an admin key (any team with ``--team``, every team
with ``--group-by team``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from typing import Any

import httpx

from aigw.cli_common import CliError, command, key_client, subcommands, table

GROUP_BYS = ("day", "month", "model", "key", "route", "api", "team")


def _day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {value!r}") from None


def _get(args: argparse.Namespace, params: dict[str, str]) -> httpx.Response:
    return key_client(args).request("GET", "/reports/usage", params=params)


def cmd_usage(args: argparse.Namespace) -> None:
    params = {"group_by": args.group_by}
    for name, value in (("from", args.start), ("to", args.end), ("team", args.team)):
        if value:
            params[name] = value
    if args.csv and args.json:
        raise CliError("choose one of --csv and --json")
    if args.csv:
        params["format"] = "csv"
        sys.stdout.write(_get(args, params).text)
        return
    report: dict[str, Any] = _get(args, params).json()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    rows = [*report["rows"], report["totals"]]
    print(f"{report.get('team_id') or 'all teams'}, {report['start']} to {report['end']}, by {args.group_by}")
    print(
        table(
            rows,
            ["group", "calls", "errors", "prompt_tokens", "completion_tokens", "cost_usd"],
        )
    )


def cmd_catch_up(args: argparse.Namespace) -> None:
    # Straight to DynamoDB, like bootstrap: it repairs what the stream could not deliver.
    if args.table:
        os.environ["TABLE_NAME"] = args.table
    if args.endpoint:
        os.environ["DYNAMODB_ENDPOINT"] = args.endpoint
    from aigw.usage.aggregation import catch_up

    added = catch_up(args.team, args.day)
    if args.json:
        print(json.dumps({"team_id": args.team, "day": args.day, "added": added}))
    else:
        print(f"{added} usage record(s) of {args.team} on {args.day} added to the reports")


def register(subparsers: Any) -> None:
    reports = subparsers.add_parser(
        "reports",
        help="usage and cost reports (team key, or admin key)",
        description="Usage and cost, from GET /reports/usage.",
    )
    actions = subcommands(reports, "report commands")
    usage = command(
        actions,
        "usage",
        "tokens, calls, errors and cost, grouped (with --key/$AIGW_API_KEY, else the admin key)",
    )
    usage.add_argument(
        "--group-by", choices=GROUP_BYS, default="day", help="how rows are grouped (default: day)"
    )
    usage.add_argument("--from", dest="start", help="first day, YYYY-MM-DD or YYYY-MM (default: 30 days ago)")
    usage.add_argument("--to", dest="end", help="last day, YYYY-MM-DD or YYYY-MM (default: today)")
    usage.add_argument("--team", help="team to report on (admin keys only; default: the key's team)")
    usage.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    usage.set_defaults(func=cmd_usage)

    catch = command(
        actions,
        "catch-up",
        "add a day's usage records the reports are missing, never twice: replayed from the "
        "table stream (its last 24 h), or recounted from the records for a day that ended over 2 days "
        "ago (writes to DynamoDB directly, like bootstrap)",
    )
    catch.add_argument("--team", required=True, help="the team")
    catch.add_argument("--day", required=True, type=_day, help="UTC day, YYYY-MM-DD")
    catch.add_argument("--table", help="table name (default: $TABLE_NAME, else aigw-local)")
    catch.add_argument(
        "--endpoint", help="DynamoDB endpoint, e.g. the DynamoDB Local one 'make dev' prints (default: AWS)"
    )
    catch.set_defaults(func=cmd_catch_up)
