"""``aigw plans ...`` and ``aigw billing ...``: plans keyed by Stripe price lookup_key, and a
team's billing (show, assign a plan, grant credits). Money is entered in USD, sent as micro-USD."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from aigw.cli import AdminClient, CliError, _print, _table

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
    client = AdminClient(args.url, args.admin_key)
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
            body["allowed_models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        if args.unlimited:
            body["unlimited"] = True
        limited = any(v is not None for v in (args.tokens, args.spend_cap, args.rpm, args.tpm))
        if args.kind == "subscription" and not limited and not args.unlimited:
            raise CliError(
                "a subscription plan needs a limit: pass --tokens, --spend-cap, --rpm or --tpm, "
                "or --unlimited if it really has none"
            )
        plan = client.call("PUT", f"/admin/plans/{args.plan_id}", body)
        _print(plan, args.json, f"saved plan {plan['plan_id']}")
    elif args.action == "list":
        rows = client.call("GET", "/admin/plans")["data"]
        for row in rows:
            row["spend_cap"] = _usd(row.get("spend_cap_micro_usd"))
            row["credits"] = _usd(row.get("credits_micro_usd")) if row.get("kind") == "credits" else ""
        columns = ["plan_id", "kind", "monthly_tokens", "spend_cap", "requests_per_minute", "credits"]
        _print(rows, args.json, _table(rows, columns))
    elif args.action == "show":
        plan = client.call("GET", f"/admin/plans/{args.plan_id}")
        _print(plan, args.json, "\n".join(f"{k}: {v}" for k, v in plan.items()))
    else:
        plan = client.call("DELETE", f"/admin/plans/{args.plan_id}")
        _print(plan, args.json, f"deleted plan {plan['plan_id']}")


def cmd_billing(args: argparse.Namespace) -> None:
    client = AdminClient(args.url, args.admin_key)
    base = f"/admin/teams/{args.team}"
    if args.action == "show":
        view = client.call("GET", f"{base}/billing")
    elif args.action == "assign":
        view = client.call("PUT", f"{base}/plan", {"plan_id": None if args.plan == "none" else args.plan})
    elif args.action == "revoke-links":
        done = client.call("POST", f"{base}/billing/revoke-links")
        _print(done, args.json, f"billing links of team {args.team} issued until now no longer open")
        return
    else:
        view = client.call("POST", f"{base}/credits", {"micro_usd": micro_usd(args.usd)})
    state = "allowed" if view.get("allowed") else f"refused ({view.get('refusal_code')})"
    text = (
        f"team {view.get('team_id')}: {state}, plan {view.get('plan_id') or '-'}, "
        f"subscription {view.get('subscription_status') or '-'}, tokens used {view.get('tokens_used', 0)}, "
        f"credits {_usd(view.get('credits_micro_usd', 0))}"
    )
    _print(view, args.json, text)


def register(sub: Any) -> None:
    plans = sub.add_parser("plans", help="manage plans (keyed by Stripe price lookup_key)")
    actions = plans.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create or replace a plan")
    create.add_argument("plan_id", help="the Stripe price lookup_key")
    create.add_argument("--name")
    create.add_argument("--kind", choices=["subscription", "credits"], default="subscription")
    create.add_argument("--tokens", type=int, help="monthly token quota")
    create.add_argument("--spend-cap", help="spend cap per period, USD")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--models", help="comma-separated allow-list, globs allowed")
    create.add_argument("--max-tokens", type=int, help="output limit assumed when a call names none")
    create.add_argument("--credits", help="credit pack: USD of credits granted per purchase")
    create.add_argument("--meter-event", help="Stripe meter event name (usage-based plans)")
    create.add_argument(
        "--unlimited",
        action="store_true",
        help="a subscription plan with no limit at all (without a limit or this flag, refused)",
    )
    listing = actions.add_parser("list")
    show = actions.add_parser("show")
    show.add_argument("plan_id")
    delete = actions.add_parser("delete")
    delete.add_argument("plan_id")
    for p in (create, listing, show, delete):
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_plans)

    billing = sub.add_parser("billing", help="a team's billing").add_subparsers(dest="action", required=True)
    show_b = billing.add_parser("show")
    assign = billing.add_parser("assign", help="give a team a plan without Stripe ('none' removes it)")
    assign.add_argument("--plan", required=True)
    grant = billing.add_parser("grant", help="grant prepaid credits")
    grant.add_argument("--usd", required=True)
    revoke = billing.add_parser(
        "revoke-links", help="make every billing link issued to the team so far invalid"
    )
    for p in (show_b, assign, grant, revoke):
        p.add_argument("--team", required=True)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_billing)
