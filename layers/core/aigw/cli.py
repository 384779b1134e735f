"""``aigw``: the gateway's command line. Talks to the gateway's HTTP API, except ``bootstrap``
(and ``reports catch-up``), which write straight into DynamoDB (local or, with AWS credentials,
deployed).

Options are accepted before or after the subcommand: ``aigw --key K apis show x`` and
``aigw apis show x --key K`` are the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from aigw import cli_billing, cli_key_budgets, cli_machine_payments, cli_models, cli_prompt_apis, cli_reports
from aigw.cli_common import (
    DEFAULT_URL,
    CliError,
    add_global_options,
    admin_client,
    comma_list,
    command,
    emit,
    expiry,
    fail,
    fields,
    subcommands,
    table,
)

# Kept for callers of the old names.
_expiry = expiry
__all__ = ["CliError", "build_parser", "main"]

EPILOG = f"""environment:
  AIGW_URL        gateway base URL (default {DEFAULT_URL}; 'make dev' prints it)
  AIGW_ADMIN_KEY  admin API key, for teams, keys, plans, billing, models
  AIGW_API_KEY    a team's API key, for apis and reports (falls back to the admin key)

'aigw COMMAND --help' describes a command; options go before or after it."""


def version() -> str:
    try:
        return metadata.version("aigw")
    except metadata.PackageNotFoundError:
        from aigw import __version__

        return __version__


# ---- bootstrap ----------------------------------------------------------------------------------


def cmd_bootstrap(args: argparse.Namespace) -> None:
    from aigw.bootstrap import BootstrapError, bootstrap_admin_at

    try:
        issued = bootstrap_admin_at(table=args.table, endpoint=args.endpoint, team_id=args.team)
    except BootstrapError as exc:
        raise CliError(str(exc)) from exc
    data = {"team_id": issued.key.team_id, "key_id": issued.key.key_id, "secret": issued.secret}
    emit(
        data,
        args.json,
        f"Admin key (shown once, store it now):\n{issued.secret}\nexport AIGW_ADMIN_KEY={issued.secret}",
    )


# ---- teams and keys -------------------------------------------------------------------------------


def cmd_teams(args: argparse.Namespace) -> None:
    client = admin_client(args)
    if args.action == "create":
        team = client.call(
            "POST", "/admin/teams", {"team_id": args.team_id, "name": args.name or args.team_id}
        )
        emit(team, args.json, f"created team {team['team_id']}")
    elif args.action == "show":
        team = client.call("GET", f"/admin/teams/{args.team_id}")
        emit(team, args.json, fields(team))
    else:
        teams = client.call("GET", "/admin/teams")["data"]
        emit(teams, args.json, table(teams, ["team_id", "name", "created_at"]))


def cmd_keys(args: argparse.Namespace) -> None:
    client = admin_client(args)
    base = f"/admin/teams/{args.team}/keys"
    if args.action == "create":
        body: dict[str, object] = {"name": args.name or "", "role": args.role}
        if args.models:
            body["allowed_models"] = comma_list(args.models)
        if args.expires:
            body["expires_at"] = expiry(args.expires)
        key = client.call("POST", base, body)
        emit(key, args.json, f"created {key['key_id']} (shown once, store it now):\n{key['secret']}")
    elif args.action == "list":
        rows = client.call("GET", base)["data"]
        for row in rows:
            row.setdefault("allowed_models", None)
            if row["allowed_models"] is None:
                row["allowed_models"] = "all"
        columns = ["key_id", "prefix", "name", "role", "status", "allowed_models", "created_at", "expires_at"]
        emit(rows, args.json, table(rows, columns))
    else:
        key = client.call("DELETE", f"{base}/{args.key_id}")
        emit(key, args.json, f"revoked {key['key_id']}")


# ---- the parser -------------------------------------------------------------------------------------


def _register_bootstrap(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    boot = sub.add_parser(
        "bootstrap",
        help="create an admin key directly in DynamoDB (the first one: there is no admin yet to ask)",
        description="Create an admin key directly in the gateway's DynamoDB table. Locally, use the "
        "DynamoDB endpoint 'make dev' prints; deployed, AWS credentials and the stack's table name.",
    )
    boot.add_argument(
        "--table",
        default=os.environ.get("TABLE_NAME") or "aigw-local",
        help="table name: the stack's GatewayTableName output (default: $TABLE_NAME, else aigw-local)",
    )
    boot.add_argument(
        "--endpoint",
        default=os.environ.get("DYNAMODB_ENDPOINT"),
        help="DynamoDB endpoint URL, e.g. the DynamoDB Local endpoint 'make dev' prints "
        "(default: $DYNAMODB_ENDPOINT, else AWS DynamoDB with your AWS credentials)",
    )
    boot.add_argument("--team", default="admin", help="team of the admin key (default: admin)")
    boot.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    boot.set_defaults(func=cmd_bootstrap)


def _register_teams(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    teams = subcommands(
        sub.add_parser("teams", help="manage teams (admin key)", description="Manage teams (admin key)."),
        "team commands",
    )
    create = command(teams, "create", "create a team")
    create.add_argument("team_id", help="team id: lowercase letters, digits and dashes")
    create.add_argument("--name", help="display name (default: the team id)")
    command(teams, "list", "list teams")
    show = command(teams, "show", "show one team")
    show.add_argument("team_id", help="team id")
    for name in ("create", "list", "show"):
        teams.choices[name].set_defaults(func=cmd_teams)


def _register_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subcommands(
        sub.add_parser("keys", help="manage a team's API keys (admin key)", description="Manage API keys."),
        "key commands",
    )
    create = command(keys, "create", "create a key; its secret is shown once")
    create.add_argument("--team", required=True, help="team the key belongs to")
    create.add_argument("--name", help="a name to recognise the key by")
    create.add_argument(
        "--role", choices=["member", "admin"], default="member", help="member or admin (default: member)"
    )
    create.add_argument(
        "--models",
        help="comma-separated allow-list, globs allowed: 'openai/*,mock/echo' (default: all models)",
    )
    create.add_argument("--expires", help="30d, 12h, or an ISO 8601 time (default: never)")
    listing = command(keys, "list", "list a team's keys (never their secrets)")
    listing.add_argument("--team", required=True, help="team whose keys to list")
    revoke = command(keys, "revoke", "revoke a key: calls with it fail at once")
    revoke.add_argument("key_id", help="the key's id (key_...), as 'keys list' shows it")
    revoke.add_argument("--team", required=True, help="team the key belongs to")
    for parser in (create, listing, revoke):
        parser.set_defaults(func=cmd_keys)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aigw",
        description="Administer an aigw gateway, and call the routes a team may use.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aigw {version()}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    _register_bootstrap(sub)
    _register_teams(sub)
    _register_keys(sub)
    # Each area registers its own commands from its own module (aigw/cli_<area>.py).
    cli_billing.register(sub)
    cli_key_budgets.register(sub)
    cli_machine_payments.register(sub)
    cli_models.register(sub)
    cli_prompt_apis.register(sub)
    cli_reports.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        try:
            args.func(args)
        except CliError as exc:
            fail(str(exc))
            return 1
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (aigw ... | head): stop quietly, like other command-line tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
