"""``aigw``: the admin command line. Talks to the admin API, except ``bootstrap``, which
writes the first admin key straight into DynamoDB (local or, with AWS credentials, deployed)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:3000"
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class CliError(Exception):
    pass


def _expiry(value: str) -> str:
    """``30d``/``12h`` from now, or an ISO 8601 timestamp, as ISO 8601 UTC."""
    match = _DURATION.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (datetime.now(UTC) + delta).isoformat()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CliError(f"--expires: '{value}' is neither a duration like 30d nor an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


class AdminClient:
    def __init__(self, url: str, admin_key: str | None) -> None:
        if not admin_key:
            raise CliError("no admin key: pass --admin-key or set AIGW_ADMIN_KEY (see 'aigw bootstrap')")
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {self._http.base_url}: {exc}") from exc
        data = response.json() if response.content else {}
        if response.status_code >= 400:
            detail = data.get("detail") or data.get("error", {}).get("message") or response.text
            raise CliError(f"{response.status_code}: {detail}")
        return data


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {
        c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "")) for r in rows)) for c in columns
    }
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    for row in rows:
        lines.append(
            "  ".join(str(row.get(c) if row.get(c) is not None else "").ljust(widths[c]) for c in columns)
        )
    return "\n".join(lines)


def cmd_bootstrap(args: argparse.Namespace) -> None:
    if args.table:
        os.environ["TABLE_NAME"] = args.table
    if args.endpoint:
        os.environ["DYNAMODB_ENDPOINT"] = args.endpoint
    from aigw.bootstrap import bootstrap_admin
    from aigw.config import settings

    settings.cache_clear()
    issued = bootstrap_admin(args.team)
    data = {"team_id": issued.key.team_id, "key_id": issued.key.key_id, "secret": issued.secret}
    _print(
        data,
        args.json,
        f"Admin key (shown once, store it now):\n{issued.secret}\nexport AIGW_ADMIN_KEY={issued.secret}",
    )


def cmd_teams(args: argparse.Namespace) -> None:
    client = AdminClient(args.url, args.admin_key)
    if args.action == "create":
        team = client.call(
            "POST", "/admin/teams", {"team_id": args.team_id, "name": args.name or args.team_id}
        )
        _print(team, args.json, f"created team {team['team_id']}")
    else:
        teams = client.call("GET", "/admin/teams")["data"]
        _print(teams, args.json, _table(teams, ["team_id", "name", "created_at"]))


def cmd_keys(args: argparse.Namespace) -> None:
    client = AdminClient(args.url, args.admin_key)
    base = f"/admin/teams/{args.team}/keys"
    if args.action == "create":
        body: dict[str, Any] = {"name": args.name or "", "role": args.role}
        if args.models:
            body["allowed_models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        if args.expires:
            body["expires_at"] = _expiry(args.expires)
        key = client.call("POST", base, body)
        _print(key, args.json, f"created {key['key_id']} (shown once, store it now):\n{key['secret']}")
    elif args.action == "list":
        rows = client.call("GET", base)["data"]
        _print(
            rows, args.json, _table(rows, ["key_id", "prefix", "name", "role", "status", "allowed_models"])
        )
    else:
        key = client.call("DELETE", f"{base}/{args.key_id}")
        _print(key, args.json, f"revoked {key['key_id']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigw", description="Administer an aigw gateway.")
    parser.add_argument("--url", default=os.environ.get("AIGW_URL", DEFAULT_URL), help="gateway base URL")
    parser.add_argument("--admin-key", default=os.environ.get("AIGW_ADMIN_KEY"), help="admin API key")
    sub = parser.add_subparsers(dest="command", required=True)

    boot = sub.add_parser("bootstrap", help="create the first admin key directly in DynamoDB")
    boot.add_argument("--table", default=os.environ.get("TABLE_NAME"), help="table name (default aigw-local)")
    boot.add_argument("--endpoint", default=os.environ.get("DYNAMODB_ENDPOINT"), help="DynamoDB endpoint URL")
    boot.add_argument("--team", default="admin", help="admin team id")
    boot.add_argument("--json", action="store_true")
    boot.set_defaults(func=cmd_bootstrap)

    teams = sub.add_parser("teams", help="manage teams").add_subparsers(dest="action", required=True)
    create_team = teams.add_parser("create")
    create_team.add_argument("team_id")
    create_team.add_argument("--name")
    create_team.add_argument("--json", action="store_true")
    list_teams = teams.add_parser("list")
    list_teams.add_argument("--json", action="store_true")
    for p in (create_team, list_teams):
        p.set_defaults(func=cmd_teams)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create_key = keys.add_parser("create")
    create_key.add_argument("--team", required=True)
    create_key.add_argument("--name")
    create_key.add_argument("--role", choices=["member", "admin"], default="member")
    create_key.add_argument("--models", help="comma-separated allow-list, globs allowed: openai/*,mock/echo")
    create_key.add_argument("--expires", help="30d, 12h, or an ISO 8601 time")
    create_key.add_argument("--json", action="store_true")
    list_keys = keys.add_parser("list")
    list_keys.add_argument("--team", required=True)
    list_keys.add_argument("--json", action="store_true")
    revoke = keys.add_parser("revoke")
    revoke.add_argument("key_id")
    revoke.add_argument("--team", required=True)
    revoke.add_argument("--json", action="store_true")
    for p in (create_key, list_keys, revoke):
        p.set_defaults(func=cmd_keys)

    # Each area registers its own commands from its own module (aigw/cli_<area>.py).
    from aigw import cli_billing, cli_key_budgets, cli_models, cli_prompt_apis, cli_reports

    cli_billing.register(sub)
    cli_key_budgets.register(sub)
    cli_models.register(sub)
    cli_prompt_apis.register(sub)
    cli_reports.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        print(f"aigw: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
