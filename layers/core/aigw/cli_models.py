"""``aigw models ...``: the model catalog and its overrides, through the admin API."""

from __future__ import annotations

import argparse
from typing import Any

from aigw.cli_common import Client, admin_client, comma_list, command, emit, fields, subcommands, table


def _client(args: argparse.Namespace) -> Client:
    return admin_client(args)


def _show(args: argparse.Namespace, data: Any, text: str) -> None:
    emit(data, args.json, text)


def cmd_list(args: argparse.Namespace) -> None:
    data = _client(args).call("GET", "/admin/models")
    rows = [m for m in data["data"] if not args.provider or m["provider"] == args.provider]
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
    _show(args, data, table(rows, columns) + "\naliases:\n" + aliases)


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
        base["fallbacks"] = comma_list(args.fallbacks)
    base.setdefault("provider", args.model_id.split("/", 1)[0])
    model = client.call("PUT", "/admin/models", base)
    _show(args, model, f"set {model['id']}:\n{fields(model)}")


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
    models = subcommands(
        subparsers.add_parser(
            "models",
            help="the model catalog: prices, aliases, fallbacks (admin key)",
            description="The model catalog and the admins' overrides of it.",
        ),
        "catalog commands",
    )
    listing = command(models, "list", "the effective catalog, aliases and overrides")
    listing.add_argument("--provider", help="only this provider's models, e.g. openai")
    listing.set_defaults(func=cmd_list)

    setter = command(models, "set", "add a model or override a built-in one")
    setter.add_argument("model_id", help="provider/name, e.g. openai/gpt-4o-mini")
    setter.add_argument("--provider", help="provider adapter (default: the id's prefix)")
    setter.add_argument("--upstream", help="the vendor's model name (Azure: deployment name)")
    setter.add_argument("--context-window", type=int, help="context window in tokens")
    setter.add_argument(
        "--max-output-tokens", type=int, help="the most tokens one answer may have (the vendor's limit)"
    )
    setter.add_argument("--input", help="USD per 1M input tokens, e.g. 0.15")
    setter.add_argument("--cached-input", help="USD per 1M cached input tokens")
    setter.add_argument("--output", help="USD per 1M output tokens")
    setter.add_argument("--fallbacks", help="comma-separated model ids tried when this one fails")
    setter.set_defaults(func=cmd_set)

    disable = command(models, "disable", "hide a model from the catalog")
    disable.add_argument("model_id", help="provider/name")
    disable.set_defaults(func=cmd_disable)

    reset = command(models, "reset", "drop the override of a model")
    reset.add_argument("model_id", help="provider/name")
    reset.set_defaults(func=cmd_reset)

    alias = command(models, "alias", "point an alias at a chain of models (none: drop the override)")
    alias.add_argument("alias", help="alias name, e.g. fast")
    alias.add_argument("targets", nargs="*", help="model ids tried in order; none drops the override")
    alias.set_defaults(func=cmd_alias)
