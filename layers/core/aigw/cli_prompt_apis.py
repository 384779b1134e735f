"""``aigw apis ...``: design, publish, share and retire prompt APIs from the command line.

Uses ``--key``/``AIGW_API_KEY`` (a key of the owner team), falling back to the admin key:
owner teams manage their own APIs, admins manage all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aigw.cli_common import Client, CliError, comma_list, command, emit, expiry, subcommands, table


def _client(args: argparse.Namespace) -> Client:
    from aigw.cli_common import key_client

    return key_client(args)


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
    emit(api, args.json, f"created {api['slug']} (draft, version 1)")


def cmd_save(args: argparse.Namespace) -> None:
    version = _client(args).call("POST", f"/apis/{args.slug}/versions", _json_arg(args.spec, "--spec"))
    emit(version, args.json, f"saved {args.slug} version {version['version']}")


def cmd_show(args: argparse.Namespace) -> None:
    api = _client(args).call("GET", f"/apis/{args.slug}")
    emit(api, args.json, json.dumps(api, indent=2))


def cmd_versions(args: argparse.Namespace) -> None:
    rows = _client(args).call("GET", f"/apis/{args.slug}/versions")["data"]
    flat = [{**r, "model": r["design"]["model"], "title": r["design"]["title"]} for r in rows]
    emit(rows, args.json, table(flat, ["version", "title", "model", "created_at", "created_by_team"]))


def cmd_dry_run(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"variables": _json_arg(args.vars, "--vars")}
    if args.version:
        body["version"] = args.version
    answer = _client(args).call("POST", f"/apis/{args.slug}/dry-run", body)
    emit(answer, args.json, json.dumps(answer["output"], indent=2))


def cmd_call(args: argparse.Namespace) -> None:
    answer = _client(args).call("POST", f"/apis/{args.slug}", _json_arg(args.vars, "--vars"))
    emit(answer, args.json, json.dumps(answer["output"], indent=2))


def _move(args: argparse.Namespace, to: str, **extra: Any) -> None:
    body = {"to": to, **{k: v for k, v in extra.items() if v is not None}}
    if args.reason:
        body["reason"] = args.reason
    api = _client(args).call("POST", f"/apis/{args.slug}/transitions", body)
    emit(api, args.json, f"{args.slug}: {api['transition']['from_state']} -> {api['state']}")


def cmd_publish(args: argparse.Namespace) -> None:
    _move(args, "published", version=args.version)


def cmd_deprecate(args: argparse.Namespace) -> None:
    _move(args, "deprecated", successor=args.successor, sunset=expiry(args.sunset) if args.sunset else None)


def cmd_retire(args: argparse.Namespace) -> None:
    _move(args, "retired", successor=args.successor)


def cmd_promote(args: argparse.Namespace) -> None:
    body = {"reason": args.reason} if args.reason else {}
    api = _client(args).call("POST", f"/apis/{args.slug}/versions/{args.version}/promote", body)
    emit(api, args.json, f"{args.slug}: version {api['live_version']} is live")


def cmd_history(args: argparse.Namespace) -> None:
    rows = _client(args).call("GET", f"/apis/{args.slug}/transitions")["data"]
    emit(
        rows,
        args.json,
        table(rows, ["at", "action", "from_state", "to_state", "version", "by_team", "by_key"]),
    )


def cmd_share(args: argparse.Namespace) -> None:
    teams = comma_list(args.teams)
    body = {"visibility": args.visibility, "shared_with": teams}
    api = _client(args).call("PUT", f"/apis/{args.slug}/sharing", body)
    emit(
        api, args.json, f"{args.slug}: visibility {api['visibility']} {', '.join(api['shared_with'])}".strip()
    )


def cmd_catalog(args: argparse.Namespace) -> None:
    query = urlencode({k: v for k, v in (("q", args.q), ("tag", args.tag)) if v})
    rows = _client(args).call("GET", "/catalog" + (f"?{query}" if query else ""))["data"]
    emit(rows, args.json, table(rows, ["slug", "title", "owner_team", "state", "version", "access"]))


def cmd_request_access(args: argparse.Namespace) -> None:
    body = {"reason": args.reason} if args.reason else {}
    request = _client(args).call("POST", f"/apis/{args.slug}/access-requests", body)
    emit(request, args.json, f"access to {args.slug}: {request['status']}")


def cmd_requests(args: argparse.Namespace) -> None:
    rows = _client(args).call("GET", f"/apis/{args.slug}/access-requests")["data"]
    emit(rows, args.json, table(rows, ["team_id", "status", "requested_at", "decided_at", "reason"]))


def _decide(args: argparse.Namespace, status: str) -> None:
    request = _client(args).call("PUT", f"/apis/{args.slug}/access-requests/{args.team}", {"status": status})
    emit(request, args.json, f"{args.team} -> {args.slug}: {request['status']}")


def cmd_approve(args: argparse.Namespace) -> None:
    _decide(args, "approved")


def cmd_reject(args: argparse.Namespace) -> None:
    _decide(args, "rejected")


def cmd_openapi(args: argparse.Namespace) -> None:
    document = _client(args).call("GET", f"/apis/{args.slug}/openapi.json")
    emit(document, True, "")


def cmd_usage(args: argparse.Namespace) -> None:
    report = _client(args).call("GET", f"/apis/{args.slug}/usage?days={args.days}")
    rows = [{"team": team, **totals} for team, totals in report["by_team"].items()]
    rows.append({"team": "TOTAL", **report["totals"]})
    columns = ["team", "calls", "errors", "prompt_tokens", "completion_tokens", "cost_micro_usd"]
    emit(report, args.json, table(rows, columns))


SPEC_HELP = "the design as JSON: inline, @file.json, or - for standard input"
VARS_HELP = "variables as JSON: inline, @file.json, or - for standard input (default: {})"


def register(subparsers: Any) -> None:
    apis = subparsers.add_parser(
        "apis",
        help="design, publish and share prompt APIs (team key, or admin key)",
        description="Prompt APIs (POST /apis/{slug}). Uses --key/$AIGW_API_KEY, a key of the owner "
        "team, else the admin key: owner teams manage their own APIs, admins all of them.",
    )
    sub = subcommands(apis, "prompt API commands")

    def cmd(name: str, func: Any, help_text: str, *, slug: bool = True) -> argparse.ArgumentParser:
        parser = command(sub, name, help_text)
        if slug:
            parser.add_argument("slug", help="the API's slug, as in /apis/{slug}")
        parser.set_defaults(func=func)
        return parser

    create = cmd("create", cmd_create, "create a draft from a design (--spec JSON, @file or -)", slug=False)
    create.add_argument("--spec", required=True, help=SPEC_HELP)
    create.add_argument("--slug", help="the slug (default: the design's 'slug')")
    cmd("save", cmd_save, "save a new version of the design").add_argument(
        "--spec", required=True, help=SPEC_HELP
    )
    cmd("show", cmd_show, "show an API")
    cmd("versions", cmd_versions, "list saved versions")
    dry = cmd("dry-run", cmd_dry_run, "try a version before publishing")
    dry.add_argument("--vars", default="{}", help=VARS_HELP)
    dry.add_argument("--version", type=int, help="version to try (default: the latest saved)")
    cmd("call", cmd_call, "call the live version").add_argument("--vars", default="{}", help=VARS_HELP)
    for name, func, text in (
        ("publish", cmd_publish, "draft -> published, or withdraw a deprecation"),
        ("deprecate", cmd_deprecate, "published -> deprecated"),
        ("retire", cmd_retire, "deprecated -> retired (410 from then on)"),
    ):
        parser = cmd(name, func, text)
        parser.add_argument("--reason", help="why, kept in the history")
        if name == "publish":
            parser.add_argument("--version", type=int, help="version to make live (default: the latest)")
        else:
            parser.add_argument("--successor", help="slug of the API that replaces this one")
        if name == "deprecate":
            parser.add_argument("--sunset", help="30d, or an ISO 8601 time (default: 90 days)")
    promote = cmd("promote", cmd_promote, "make another version live")
    promote.add_argument("version", type=int, help="the version number")
    promote.add_argument("--reason", help="why, kept in the history")
    cmd("history", cmd_history, "lifecycle history: who did what, when")
    share = cmd("share", cmd_share, "set visibility: private, shared (with --teams) or org")
    share.add_argument(
        "--visibility", choices=["private", "shared", "org"], required=True, help="private, shared or org"
    )
    share.add_argument("--teams", help="comma-separated team ids, for 'shared'")
    catalog = cmd("catalog", cmd_catalog, "list the APIs your team may see", slug=False)
    catalog.add_argument("--q", help="search in names, titles and descriptions")
    catalog.add_argument("--tag", help="only APIs with this tag")
    cmd("request-access", cmd_request_access, "ask the owner for access").add_argument(
        "--reason", help="why you need it, shown to the owner"
    )
    cmd("requests", cmd_requests, "list access requests (owner)")
    cmd("approve", cmd_approve, "approve a team's request (owner)").add_argument("team", help="the team")
    cmd("reject", cmd_reject, "reject a team's request (owner)").add_argument("team", help="the team")
    cmd("openapi", cmd_openapi, "print the API's OpenAPI document")
    cmd("usage", cmd_usage, "calls, tokens, cost and errors per calling team").add_argument(
        "--days", type=int, default=30, help="days back (default: 30)"
    )
