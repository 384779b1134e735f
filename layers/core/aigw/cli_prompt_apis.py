"""``aigw apis ...``: design, publish, share and retire prompt APIs from the command line.

Uses ``--key``/``AIGW_API_KEY`` (a key of the owner team), falling back to the admin key:
owner teams manage their own APIs, admins manage all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aigw.cli import AdminClient, CliError, _expiry, _print, _table


def _client(args: argparse.Namespace) -> AdminClient:
    key = args.key or args.admin_key
    if not key:
        raise CliError(
            "no API key: pass --key or set AIGW_API_KEY (a key of the owner team) or AIGW_ADMIN_KEY"
        )
    return AdminClient(args.url, key)


def _json_arg(value: str, what: str) -> Any:
    """Inline JSON, ``@file.json``, or ``-`` for standard input."""
    try:
        if value == "-":
            return json.load(sys.stdin)
        if value.startswith("@"):
            return json.loads(Path(value[1:]).read_text(encoding="utf-8"))
        return json.loads(value)
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"{what}: not readable JSON ({exc})") from exc


def cmd_create(args: argparse.Namespace) -> None:
    spec = _json_arg(args.spec, "--spec")
    if args.slug:
        spec["slug"] = args.slug
    api = _client(args).call("POST", "/apis", spec)
    _print(api, args.json, f"created {api['slug']} (draft, version 1)")


def cmd_save(args: argparse.Namespace) -> None:
    version = _client(args).call("POST", f"/apis/{args.slug}/versions", _json_arg(args.spec, "--spec"))
    _print(version, args.json, f"saved {args.slug} version {version['version']}")


def cmd_show(args: argparse.Namespace) -> None:
    api = _client(args).call("GET", f"/apis/{args.slug}")
    _print(api, args.json, json.dumps(api, indent=2))


def cmd_versions(args: argparse.Namespace) -> None:
    rows = _client(args).call("GET", f"/apis/{args.slug}/versions")["data"]
    flat = [{**r, "model": r["design"]["model"], "title": r["design"]["title"]} for r in rows]
    _print(rows, args.json, _table(flat, ["version", "title", "model", "created_at", "created_by_team"]))


def cmd_dry_run(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"variables": _json_arg(args.vars, "--vars")}
    if args.version:
        body["version"] = args.version
    answer = _client(args).call("POST", f"/apis/{args.slug}/dry-run", body)
    _print(answer, args.json, json.dumps(answer["output"], indent=2))


def cmd_call(args: argparse.Namespace) -> None:
    answer = _client(args).call("POST", f"/apis/{args.slug}", _json_arg(args.vars, "--vars"))
    _print(answer, args.json, json.dumps(answer["output"], indent=2))


def _move(args: argparse.Namespace, to: str, **extra: Any) -> None:
    body = {"to": to, **{k: v for k, v in extra.items() if v is not None}}
    if args.reason:
        body["reason"] = args.reason
    api = _client(args).call("POST", f"/apis/{args.slug}/transitions", body)
    _print(api, args.json, f"{args.slug}: {api['transition']['from_state']} -> {api['state']}")


def cmd_publish(args: argparse.Namespace) -> None:
    _move(args, "published", version=args.version)


def cmd_deprecate(args: argparse.Namespace) -> None:
    _move(args, "deprecated", successor=args.successor, sunset=_expiry(args.sunset) if args.sunset else None)


def cmd_retire(args: argparse.Namespace) -> None:
    _move(args, "retired", successor=args.successor)


def cmd_promote(args: argparse.Namespace) -> None:
    body = {"reason": args.reason} if args.reason else {}
    api = _client(args).call("POST", f"/apis/{args.slug}/versions/{args.version}/promote", body)
    _print(api, args.json, f"{args.slug}: version {api['live_version']} is live")


def cmd_history(args: argparse.Namespace) -> None:
    rows = _client(args).call("GET", f"/apis/{args.slug}/transitions")["data"]
    _print(
        rows,
        args.json,
        _table(rows, ["at", "action", "from_state", "to_state", "version", "by_team", "by_key"]),
    )


def cmd_share(args: argparse.Namespace) -> None:
    teams = [t.strip() for t in (args.teams or "").split(",") if t.strip()]
    body = {"visibility": args.visibility, "shared_with": teams}
    api = _client(args).call("PUT", f"/apis/{args.slug}/sharing", body)
    _print(
        api, args.json, f"{args.slug}: visibility {api['visibility']} {', '.join(api['shared_with'])}".strip()
    )


def cmd_catalog(args: argparse.Namespace) -> None:
    query = urlencode({k: v for k, v in (("q", args.q), ("tag", args.tag)) if v})
    rows = _client(args).call("GET", "/catalog" + (f"?{query}" if query else ""))["data"]
    _print(rows, args.json, _table(rows, ["slug", "title", "owner_team", "state", "version", "access"]))


def cmd_request_access(args: argparse.Namespace) -> None:
    body = {"reason": args.reason} if args.reason else {}
    request = _client(args).call("POST", f"/apis/{args.slug}/access-requests", body)
    _print(request, args.json, f"access to {args.slug}: {request['status']}")


def cmd_requests(args: argparse.Namespace) -> None:
    rows = _client(args).call("GET", f"/apis/{args.slug}/access-requests")["data"]
    _print(rows, args.json, _table(rows, ["team_id", "status", "requested_at", "decided_at", "reason"]))


def _decide(args: argparse.Namespace, status: str) -> None:
    request = _client(args).call("PUT", f"/apis/{args.slug}/access-requests/{args.team}", {"status": status})
    _print(request, args.json, f"{args.team} -> {args.slug}: {request['status']}")


def cmd_approve(args: argparse.Namespace) -> None:
    _decide(args, "approved")


def cmd_reject(args: argparse.Namespace) -> None:
    _decide(args, "rejected")


def cmd_openapi(args: argparse.Namespace) -> None:
    document = _client(args).call("GET", f"/apis/{args.slug}/openapi.json")
    print(json.dumps(document, indent=2))  # noqa: T201 - the document is the output


def cmd_usage(args: argparse.Namespace) -> None:
    report = _client(args).call("GET", f"/apis/{args.slug}/usage?days={args.days}")
    rows = [{"team": team, **totals} for team, totals in report["by_team"].items()]
    rows.append({"team": "TOTAL", **report["totals"]})
    columns = ["team", "calls", "errors", "prompt_tokens", "completion_tokens", "cost_micro_usd"]
    _print(report, args.json, _table(rows, columns))


def register(subparsers: Any) -> None:
    apis = subparsers.add_parser("apis", help="design, publish and share prompt APIs")
    apis.add_argument(
        "--key", default=os.environ.get("AIGW_API_KEY"), help="API key (default: the admin key)"
    )
    sub = apis.add_subparsers(dest="action", required=True)

    def command(name: str, func: Any, help_text: str, *, slug: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        if slug:
            parser.add_argument("slug")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=func)
        return parser

    create = command("create", cmd_create, "create a draft from a design (JSON, @file or -)", slug=False)
    create.add_argument("--spec", required=True)
    create.add_argument("--slug")
    command("save", cmd_save, "save a new version of the design").add_argument("--spec", required=True)
    command("show", cmd_show, "show an API")
    command("versions", cmd_versions, "list saved versions")
    dry = command("dry-run", cmd_dry_run, "try a version before publishing")
    dry.add_argument("--vars", default="{}")
    dry.add_argument("--version", type=int)
    command("call", cmd_call, "call the live version").add_argument("--vars", default="{}")
    for name, func, text in (
        ("publish", cmd_publish, "draft -> published, or withdraw a deprecation"),
        ("deprecate", cmd_deprecate, "published -> deprecated"),
        ("retire", cmd_retire, "deprecated -> retired (410 from then on)"),
    ):
        parser = command(name, func, text)
        parser.add_argument("--reason")
        if name == "publish":
            parser.add_argument("--version", type=int)
        else:
            parser.add_argument("--successor")
        if name == "deprecate":
            parser.add_argument("--sunset", help="30d, or an ISO 8601 time (default: 90 days)")
    promote = command("promote", cmd_promote, "make another version live")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason")
    command("history", cmd_history, "lifecycle history: who did what, when")
    share = command("share", cmd_share, "set visibility: private, shared (with --teams) or org")
    share.add_argument("--visibility", choices=["private", "shared", "org"], required=True)
    share.add_argument("--teams", help="comma-separated team ids for 'shared'")
    catalog = command("catalog", cmd_catalog, "list the APIs your team may see", slug=False)
    catalog.add_argument("--q")
    catalog.add_argument("--tag")
    command("request-access", cmd_request_access, "ask the owner for access").add_argument("--reason")
    command("requests", cmd_requests, "list access requests (owner)")
    command("approve", cmd_approve, "approve a team's request (owner)").add_argument("team")
    command("reject", cmd_reject, "reject a team's request (owner)").add_argument("team")
    command("openapi", cmd_openapi, "print the API's OpenAPI document")
    command("usage", cmd_usage, "calls, tokens, cost and errors per calling team").add_argument(
        "--days", type=int, default=30
    )
