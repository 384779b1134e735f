"""``aigw machine-payments ...``: a team's machine payments (agents topping up credits over the
Machine Payments Protocol): show and change the settings, list the payments (the audit list)."""

from __future__ import annotations

import argparse
from typing import Any

from aigw.cli_billing import _usd
from aigw.cli_common import admin_client, command, emit, subcommands, table


def _settings_text(view: dict[str, Any]) -> str:
    pack = view.get("pack") or {}
    state = "on" if view.get("enabled") else "off"
    lines = [
        f"team {view.get('team_id')}: machine payments {state}"
        + (", self-serve (also without a subscription)" if view.get("self_serve") else ""),
        f"pack: {pack.get('plan_id', '-')} ({_usd(pack.get('credits_micro_usd'))} of credits for "
        f"{pack.get('amount', '-')} {pack.get('currency', 'usd')} cents)"
        if pack
        else "pack: none (set one with --pack)",
        f"ceilings: {view.get('team_daily_limit')} a day for the team, "
        f"{view.get('key_daily_limit')} a day per key; today {view.get('today', {}).get('team_top_ups', 0)}",
    ]
    if not view.get("configured"):
        lines.append("note: this gateway has no STRIPE_PROFILE_ID or challenge key: no challenge is offered")
    return "\n".join(lines)


def cmd_machine_payments(args: argparse.Namespace) -> None:
    client = admin_client(args)
    base = f"/admin/teams/{args.team}/machine-payments"
    if args.action == "show":
        view = client.call("GET", base)
        emit(view, args.json, _settings_text(view))
    elif args.action == "set":
        body: dict[str, Any] = {}
        for field, value in (
            ("enabled", args.enabled),
            ("self_serve", args.self_serve),
            ("pack_id", args.pack),
            ("team_daily_limit", args.team_daily),
            ("key_daily_limit", args.key_daily),
        ):
            if value is not None:
                body[field] = value
        view = client.call("PUT", base, body)
        emit(view, args.json, _settings_text(view))
    else:
        rows = client.call("GET", f"{base}/payments?limit={args.limit}")["data"]
        for row in rows:
            row["credits"] = _usd(row.get("credits_micro_usd"))
            row["key"] = row.get("key_prefix") or row.get("key_id")
        columns = ["created_at", "key", "amount_cents", "credits", "payment_intent", "request_id"]
        emit(rows, args.json, table(rows, columns))


def register(sub: Any) -> None:
    group = subcommands(
        sub.add_parser(
            "machine-payments",
            help="agents paying a 402 themselves (Machine Payments Protocol, Stripe) (admin key)",
            description="A team's machine payments: settings, the pack on offer, the audit list.",
        ),
        "machine payment commands",
    )
    command(group, "show", "settings, the pack on offer, today's top-ups")
    change = command(group, "set", "opt a team in or out, choose the pack, set the daily ceilings")
    on_off = change.add_mutually_exclusive_group()
    on_off.add_argument(
        "--enable", dest="enabled", action="store_const", const=True, help="offer agents a challenge"
    )
    on_off.add_argument(
        "--disable", dest="enabled", action="store_const", const=False, help="offer no challenge"
    )
    serve = change.add_mutually_exclusive_group()
    serve.add_argument(
        "--self-serve",
        dest="self_serve",
        action="store_const",
        const=True,
        help="also offer a top-up when the team has no subscription (402 no_subscription)",
    )
    serve.add_argument(
        "--no-self-serve",
        dest="self_serve",
        action="store_const",
        const=False,
        help="offer top-ups only to teams with a plan or credits (default)",
    )
    change.add_argument("--pack", help="the credit pack (a plan of kind credits) an agent may buy")
    change.add_argument("--team-daily", type=int, help="machine top-ups a day for the whole team")
    change.add_argument("--key-daily", type=int, help="machine top-ups a day for each key")
    listing = command(group, "list", "the audit list: who, when, amount, PaymentIntent")
    listing.add_argument("--limit", type=int, default=100, help="most recent payments to list (default: 100)")
    for parser in group.choices.values():
        parser.add_argument("--team", required=True, help="the team")
        parser.set_defaults(func=cmd_machine_payments)
