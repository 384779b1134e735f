"""``aigw reports usage``: usage and cost from ``GET /reports/usage``, as a table, JSON or CSV.

Works with a team key (its own team) or an admin key (any team with ``--team``, every team
with ``--group-by team``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

from aigw.cli import CliError, _table

GROUP_BYS = ("day", "month", "model", "key", "route", "api", "team")


def _get(args: argparse.Namespace, params: dict[str, str]) -> httpx.Response:
    key = args.key or args.admin_key
    if not key:
        raise CliError("no key: pass --key (or --admin-key), or set AIGW_API_KEY or AIGW_ADMIN_KEY")
    try:
        response = httpx.get(
            args.url.rstrip("/") + "/reports/usage",
            params=params,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the gateway at {args.url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise CliError(f"{response.status_code}: {detail}")
    return response


def cmd_usage(args: argparse.Namespace) -> None:
    params = {"group_by": args.group_by}
    for name, value in (("from", args.start), ("to", args.end), ("team", args.team)):
        if value:
            params[name] = value
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
        _table(
            rows,
            ["group", "calls", "errors", "prompt_tokens", "completion_tokens", "cost_usd"],
        )
    )


def register(subparsers: Any) -> None:
    reports = subparsers.add_parser("reports", help="usage and cost reports")
    actions = reports.add_subparsers(dest="action", required=True)
    usage = actions.add_parser("usage", help="tokens, calls, errors and cost, grouped")
    usage.add_argument("--group-by", choices=GROUP_BYS, default="day")
    usage.add_argument("--from", dest="start", help="first day, YYYY-MM-DD or YYYY-MM (default: 30 days ago)")
    usage.add_argument("--to", dest="end", help="last day, YYYY-MM-DD or YYYY-MM (default: today)")
    usage.add_argument("--team", help="team to report on (admin keys only; default: the key's team)")
    usage.add_argument(
        "--key", default=os.environ.get("AIGW_API_KEY"), help="API key to report with (team or admin)"
    )
    output = usage.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--csv", action="store_true")
    usage.set_defaults(func=cmd_usage)
