"""``aigw models ...``: the model catalog and its overrides, through the admin API."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _client(args: argparse.Namespace) -> Any:
    from aigw.cli import AdminClient

    return AdminClient(args.url, args.admin_key)


def _show(args: argparse.Namespace, data: Any, text: str) -> None:
    from aigw.cli import _print

    _print(data, args.json, text)


def cmd_list(args: argparse.Namespace) -> None:
    from aigw.cli import _table

    data = _client(args).call("GET", "/admin/models")
    rows = [
        {**m, "fallbacks": ",".join(m.get("fallbacks") or [])}
        for m in data["data"]
        if not args.provider or m["provider"] == args.provider
    ]
    aliases = "\n".join(f"  {name} -> {', '.join(targets)}" for name, targets in data["aliases"].items())
    columns = [
        "id",
        "upstream",
        "max_output_tokens",
        "input_per_mtok",
        "cached_input_per_mtok",
        "output_per_mtok",
        "source",
        "fallbacks",
    ]
    _show(args, data, _table(rows, columns) + "\naliases:\n" + aliases)


def cmd_set(args: argparse.Namespace) -> None:
    client = _client(args)
    current = {m["id"]: m for m in client.call("GET", "/admin/models")["data"]}
    base: dict[str, Any] = dict(current.get(args.model_id) or {"id": args.model_id})
    base.pop("source", None)
    updates = {
        "provider": args.provider,
        "upstream": args.upstream,
        "context_window": args.context_window,
        "max_output_tokens": args.max_output_tokens,
        "input_per_mtok": args.input,
        "cached_input_per_mtok": args.cached_input,
        "output_per_mtok": args.output,
    }
    base.update({k: v for k, v in updates.items() if v is not None})
    if args.fallbacks is not None:
        base["fallbacks"] = [f.strip() for f in args.fallbacks.split(",") if f.strip()]
    base.setdefault("provider", args.model_id.split("/", 1)[0])
    model = client.call("PUT", "/admin/models", base)
    _show(args, model, f"set {model['id']}: {json.dumps(model)}")


def cmd_disable(args: argparse.Namespace) -> None:
    data = _client(args).call("DELETE", f"/admin/models/{args.model_id}")
    _show(args, data, f"disabled {args.model_id}")


def cmd_reset(args: argparse.Namespace) -> None:
    data = _client(args).call("DELETE", f"/admin/models/{args.model_id}/override")
    _show(args, data, f"{args.model_id}: back to the built-in catalog")


def cmd_alias(args: argparse.Namespace) -> None:
    client = _client(args)
    if args.targets:
        data = client.call("PUT", f"/admin/aliases/{args.alias}", {"targets": args.targets})
        _show(args, data, f"{args.alias} -> {', '.join(data['targets'])}")
    else:
        data = client.call("DELETE", f"/admin/aliases/{args.alias}")
        _show(args, data, f"removed the override of alias {args.alias}")


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="the model catalog: prices, aliases, fallbacks")
    actions = models.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="the effective catalog, aliases and overrides")
    listing.add_argument("--provider")
    listing.set_defaults(func=cmd_list)

    setter = actions.add_parser("set", help="add a model or override a built-in one")
    setter.add_argument("model_id", help="provider/name, e.g. openai/gpt-4o-mini")
    setter.add_argument("--provider")
    setter.add_argument("--upstream", help="the vendor's model name (Azure: deployment name)")
    setter.add_argument("--context-window", type=int)
    setter.add_argument(
        "--max-output-tokens", type=int, help="the most tokens one answer may have (the vendor's limit)"
    )
    setter.add_argument("--input", help="USD per 1M input tokens, e.g. 0.15")
    setter.add_argument("--cached-input", help="USD per 1M cached input tokens")
    setter.add_argument("--output", help="USD per 1M output tokens")
    setter.add_argument("--fallbacks", help="comma-separated model ids tried when this one fails")
    setter.set_defaults(func=cmd_set)

    disable = actions.add_parser("disable", help="hide a model from the catalog")
    disable.add_argument("model_id")
    disable.set_defaults(func=cmd_disable)

    reset = actions.add_parser("reset", help="drop the override of a model")
    reset.add_argument("model_id")
    reset.set_defaults(func=cmd_reset)

    alias = actions.add_parser("alias", help="point an alias at a chain of models (none: drop the override)")
    alias.add_argument("alias")
    alias.add_argument("targets", nargs="*")
    alias.set_defaults(func=cmd_alias)

    for parser in (listing, setter, disable, reset, alias):
        parser.add_argument("--json", action="store_true")
