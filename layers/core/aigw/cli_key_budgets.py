"""``aigw key-budget ...``: a key's own spend cap per UTC day or month (e.g. a CI key with $5 a
day), on top of its team's plan or credits. Amounts are entered in USD, sent as micro-USD.

    aigw key-budget set key_0123 --team acme --usd 5 --per day
    aigw key-budget show --team acme
    aigw key-budget remove key_0123 --team acme
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from aigw.cli_common import CliError, admin_client, command, emit, subcommands, table

_MICRO = Decimal(1_000_000)


def _micro_usd(value: str) -> int:
    try:
        amount = Decimal(value.removeprefix("$"))
    except InvalidOperation as exc:
        raise CliError(f"--usd: '{value}' is not an amount in USD") from exc
    if amount < 0 or not amount.is_finite():
        raise CliError("--usd: the budget must be zero or more")
    return int(amount * _MICRO)


def _usd(micro: Any) -> str:
    return "" if micro is None else f"${Decimal(int(micro)) / _MICRO:.6f}".rstrip("0").rstrip(".")


def _row(key: dict[str, Any]) -> dict[str, Any]:
    budget = key.get("budget") or {}
    return {
        "key_id": key.get("key_id"),
        "name": key.get("name"),
        "budget": f"{_usd(budget['limit_micro_usd'])}/{budget['period']}" if budget else "none",
        "used": _usd(budget.get("used_micro_usd")) if budget else "",
        "remaining": _usd(budget.get("remaining_micro_usd")) if budget else "",
        "resets_at": budget.get("resets_at", "") if budget else "",
    }


def cmd_key_budget(args: argparse.Namespace) -> None:
    client = admin_client(args)
    base = f"/admin/teams/{args.team}/keys"
    if args.action == "show":
        rows = client.call("GET", base)["data"]
        emit(rows, args.json, table([_row(r) for r in rows], list(_row({}).keys())))
        return
    if args.action == "set":
        body = {"limit_micro_usd": _micro_usd(args.usd), "period": args.per}
        key = client.call("PUT", f"{base}/{args.key_id}/budget", body)
        text = f"{key['key_id']} may spend {_usd(body['limit_micro_usd'])} per {args.per}"
    else:
        key = client.call("DELETE", f"{base}/{args.key_id}/budget")
        text = f"{key['key_id']} has no budget of its own now (its team's terms still apply)"
    emit(key, args.json, text)


def register(sub: Any) -> None:
    budgets = subcommands(
        sub.add_parser(
            "key-budget",
            help="a key's own spend cap per day or month (admin key)",
            description="A key's own spend cap per UTC day or month, on top of its team's terms.",
        ),
        "key budget commands",
    )
    set_ = command(budgets, "set", "give a key its own spend cap (replaces any earlier one)")
    set_.add_argument("key_id", help="the key's id (key_...), as 'keys list' shows it")
    set_.add_argument("--usd", required=True, help="the cap in USD, e.g. 5 or 0.50")
    set_.add_argument(
        "--per", choices=["day", "month"], default="day", help="UTC day or calendar month (default: day)"
    )
    remove = command(budgets, "remove", "remove a key's own cap")
    remove.add_argument("key_id", help="the key's id (key_...)")
    command(budgets, "show", "the team's keys with their caps and this period's spend")
    for parser in budgets.choices.values():
        parser.add_argument("--team", required=True, help="the team")
        parser.set_defaults(func=cmd_key_budget)
