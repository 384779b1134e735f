"""``aigw plans ...`` and ``aigw billing ...``: plans keyed by Stripe price lookup_key, and a
team's billing (show, assign a plan, grant credits). Money is entered in USD, sent as micro-USD."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from aigw.cli_common import CliError, admin_client, comma_list, command, emit, fields, subcommands, table

_MICRO = Decimal(1_000_000)


def micro_usd(value: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise CliError(f"'{value}' is not an amount in USD") from exc
    if amount < 0:
        raise CliError("amounts cannot be negative")
    return int(amount * _MICRO)


def _usd(micro: Any) -> str:
    return "" if micro is None else f"${Decimal(int(micro)) / _MICRO:.6f}".rstrip("0").rstrip(".")


def cmd_plans(args: argparse.Namespace) -> None:
    client = admin_client(args)
    if args.action == "create":
        body: dict[str, Any] = {"kind": args.kind, "name": args.name or args.plan_id}
        for field, value in (
            ("monthly_tokens", args.tokens),
            ("requests_per_minute", args.rpm),
            ("tokens_per_minute", args.tpm),
            ("default_max_tokens", args.max_tokens),
            ("meter_event_name", args.meter_event),
        ):
            if value is not None:
                body[field] = value
        if args.spend_cap is not None:
            body["spend_cap_micro_usd"] = micro_usd(args.spend_cap)
        if args.credits is not None:
            body["credits_micro_usd"] = micro_usd(args.credits)
        if args.models:
            body["allowed_models"] = comma_list(args.models)
        if args.unlimited:
            body["unlimited"] = True
        limited = any(v is not None for v in (args.tokens, args.spend_cap, args.rpm, args.tpm))
        if args.kind == "subscription" and not limited and not args.unlimited:
            raise CliError(
                "a subscription plan needs a limit: pass --tokens, --spend-cap, --rpm or --tpm, "
                "or --unlimited if it really has none"
            )
        plan = client.call("PUT", f"/admin/plans/{args.plan_id}", body)
        emit(plan, args.json, f"saved plan {plan['plan_id']}")
    elif args.action == "list":
        rows = client.call("GET", "/admin/plans")["data"]
        for row in rows:
            row["spend_cap"] = _usd(row.get("spend_cap_micro_usd"))
            row["credits"] = _usd(row.get("credits_micro_usd")) if row.get("kind") == "credits" else ""
        columns = ["plan_id", "kind", "monthly_tokens", "spend_cap", "requests_per_minute", "credits"]
        emit(rows, args.json, table(rows, columns))
    elif args.action == "show":
        plan = client.call("GET", f"/admin/plans/{args.plan_id}")
        emit(plan, args.json, fields(plan))
    else:
        plan = client.call("DELETE", f"/admin/plans/{args.plan_id}")
        emit(plan, args.json, f"deleted plan {plan['plan_id']}")


def cmd_billing(args: argparse.Namespace) -> None:
    client = admin_client(args)
    base = f"/admin/teams/{args.team}"
    if args.action == "show":
        view = client.call("GET", f"{base}/billing")
    elif args.action == "assign":
        view = client.call("PUT", f"{base}/plan", {"plan_id": None if args.plan == "none" else args.plan})
    elif args.action == "revoke-links":
        done = client.call("POST", f"{base}/billing/revoke-links")
        emit(done, args.json, f"billing links of team {args.team} issued until now no longer open")
        return
    else:
        view = client.call("POST", f"{base}/credits", {"micro_usd": micro_usd(args.usd)})
    state = "allowed" if view.get("allowed") else f"refused ({view.get('refusal_code')})"
    text = (
        f"team {view.get('team_id')}: {state}, plan {view.get('plan_id') or '-'}, "
        f"subscription {view.get('subscription_status') or '-'}, tokens used {view.get('tokens_used', 0)}, "
        f"credits {_usd(view.get('credits_micro_usd', 0))}"
    )
    emit(view, args.json, text)


def register(sub: Any) -> None:
    plans = subcommands(
        sub.add_parser(
            "plans",
            help="manage plans, keyed by Stripe price lookup_key (admin key)",
            description="Manage plans. A plan's id is the lookup_key of its Stripe price.",
        ),
        "plan commands",
    )
    create = command(plans, "create", "create or replace a plan")
    create.add_argument("plan_id", help="the Stripe price lookup_key, e.g. pro-monthly")
    create.add_argument("--name", help="display name (default: the plan id)")
    create.add_argument(
        "--kind",
        choices=["subscription", "credits"],
        default="subscription",
        help="a subscription, or a one-off credit pack (default: subscription)",
    )
    create.add_argument("--tokens", type=int, help="monthly token quota (default: none)")
    create.add_argument("--spend-cap", help="spend cap per period, USD (default: none)")
    create.add_argument("--rpm", type=int, help="requests per minute (default: none)")
    create.add_argument("--tpm", type=int, help="tokens per minute (default: none)")
    create.add_argument("--models", help="comma-separated allow-list, globs allowed (default: all models)")
    create.add_argument(
        "--max-tokens", type=int, help="output limit assumed when a call names none (default: 4096)"
    )
    create.add_argument("--credits", help="credit pack: USD of credits granted per purchase")
    create.add_argument("--meter-event", help="Stripe meter event name, for usage-based plans")
    create.add_argument(
        "--unlimited",
        action="store_true",
        help="a subscription plan with no limit at all (without a limit or this flag, refused)",
    )
    command(plans, "list", "list plans")
    show = command(plans, "show", "show one plan")
    show.add_argument("plan_id", help="the plan's id")
    delete = command(plans, "delete", "delete a plan")
    delete.add_argument("plan_id", help="the plan's id")
    for parser in plans.choices.values():
        parser.set_defaults(func=cmd_plans)

    billing = subcommands(
        sub.add_parser(
            "billing",
            help="a team's billing: show, assign a plan, grant credits (admin key)",
            description="A team's billing state, outside Stripe.",
        ),
        "billing commands",
    )
    command(billing, "show", "whether the team may call, its plan, usage and credits")
    assign = command(billing, "assign", "give a team a plan without Stripe ('none' removes it)")
    assign.add_argument("--plan", required=True, help="plan id, or 'none'")
    grant = command(billing, "grant", "grant prepaid credits")
    grant.add_argument("--usd", required=True, help="amount in USD, e.g. 25 or 0.50")
    command(billing, "revoke-links", "make every billing link issued to the team so far invalid")
    for parser in billing.choices.values():
        parser.add_argument("--team", required=True, help="the team")
        parser.set_defaults(func=cmd_billing)
