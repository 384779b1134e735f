"""Generate the built-in catalog (layers/core/aigw/data/models.json) from ``genai-prices``.

Run with ``make catalog`` (which installs the pinned genai-prices first). The package is a
build-time input only: the layer ships the generated JSON, never the package (docs/decisions/
0022-breadth-endpoints.md).

Two sources, merged:
- ``scripts/catalog_curated.json``: the models this gateway names itself (ids, upstream names,
  aliases, embedding dimensions, output limits, Bedrock and Azure ids, local servers, mock).
  Their prices are refreshed from genai-prices wherever the library knows the upstream model.
- every text model genai-prices lists for the vendors we have adapters for (OpenAI, Anthropic,
  Gemini, Mistral, Groq, DeepSeek, Together, Bedrock), as ``<provider>/<model id>``. Bedrock's
  are named by the id Bedrock's Converse API takes: a base model id, a ``global.`` inference
  profile, or for models sold through regional profiles the ``us.`` one (an admin override
  points a model at ``eu.``/``apac.`` for a stack in those regions). Azure is left to the curated
  list: its model ids are the deployment names each resource chooses. Image, audio, realtime and
  other models the chat and embeddings adapters cannot serve are left out.

Output limits are not in genai-prices: ``OUTPUT_LIMITS`` below holds the vendors' documented
limits by model family; a model matching none gets ``DEFAULT_OUTPUT_LIMIT`` (or its context
window if smaller).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CURATED = ROOT / "scripts" / "catalog_curated.json"
OUTPUT = ROOT / "layers" / "core" / "aigw" / "data" / "models.json"

# genai-prices provider id -> our provider name.
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "together": "together",
    "aws": "bedrock",
}
# Where a generated model's genai id is not a model of that vendor's API (Google also lists
# Claude on Vertex, for example).
KEEP = {"gemini": re.compile(r"^(gemini|gemma|text-embedding|embedding)")}
# Documented output limits by model family (first match wins).
OUTPUT_LIMITS: list[tuple[str, int]] = [
    (r"^(o1|o3|o4)", 100_000),
    (r"^gpt-([5-9]|\d\d)", 128_000),
    (r"^gpt-4\.1", 32_768),
    (r"^gpt-4o", 16_384),
    (r"^gpt-4-turbo|^gpt-4-\d{4}", 4_096),
    (r"^gpt-4", 8_192),
    (r"^gpt-3\.5", 4_096),
    (r"^claude-3-7", 64_000),
    (r"^claude-3-5", 8_192),
    (r"^claude-(3|2|v1|instant)", 4_096),
    (r"^claude-opus-4(-1)?(-\d{8})?(-v\d:\d)?$", 32_000),
    # Every later Claude generation (4.5 on): 64,000 is the lowest limit Anthropic documents for them.
    (r"^claude", 64_000),
    (r"^gemini-(2\.5|[3-9])", 65_536),
    (r"^gemini", 8_192),
    (r"^deepseek-reasoner", 64_000),
    (r"^deepseek", 8_192),
]
# Not chat or embedding models: the adapters cannot serve them through /v1/chat/completions.
# Nor the library's price patterns for fine-tunes (``ft:gpt-3.5-turbo-``): no caller sends them.
NOT_TEXT = re.compile(
    r"image|audio|realtime|tts|whisper|transcribe|dall-e|moderation|search|computer-use|sonic|voxtral"
    r"|^ft:|\.ft-|-$"
)
DEFAULT_OUTPUT_LIMIT = 8_192
EPOCH = 1735689600  # what "created" says for a generated model (genai-prices has no dates)


def _price(value: Any) -> Decimal | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # tiered prices: the first tier
    return Decimal(str(base))


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _bedrock_upstream(genai_id: str) -> str | None:
    """The model id Bedrock's Converse API takes for a genai-prices ``aws`` model, or None for
    embeddings (the curated Titan and Cohere ones are those the embeddings adapter speaks)."""
    if "embed" in genai_id:
        return None
    if genai_id.startswith("regional."):
        return "us." + genai_id.removeprefix("regional.")
    return genai_id


def _family(upstream: str) -> str:
    """The model family name an output limit is matched on: Bedrock's ``us.anthropic.claude-x``
    is ``claude-x``."""
    name = re.sub(r"^(global|us|eu|apac)\.", "", upstream)
    return name.split(".", 1)[1] if re.match(r"^[a-z]+\.", name) else name


def _output_limit(name: str, context: int) -> int:
    for pattern, limit in OUTPUT_LIMITS:
        if re.search(pattern, name):
            return min(limit, context)
    return min(DEFAULT_OUTPUT_LIMIT, context)


def library_prices(provider_id: str, model_ref: str) -> dict[str, Decimal] | None:
    """The library's current prices of a model (USD per 1M tokens), or None if unknown."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    try:
        _, info = snapshot.find_provider_model(model_ref, None, provider_id, None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(UTC))
    fresh = _price(getattr(prices, "input_mtok", None))
    if fresh is None:
        return None
    out = _price(getattr(prices, "output_mtok", None)) or Decimal(0)
    cached = _price(getattr(prices, "cache_read_mtok", None))
    return {"input": fresh, "output": out, "cached": cached if cached is not None else fresh}


def _apply(entry: dict[str, Any], prices: dict[str, Decimal]) -> None:
    entry["input_per_mtok"] = _fmt(prices["input"])
    entry["cached_input_per_mtok"] = _fmt(prices["cached"])
    entry["output_per_mtok"] = _fmt(prices["output"]) if entry.get("mode") != "embedding" else "0"


def generate() -> dict[str, Any]:
    from genai_prices import data

    curated = json.loads(CURATED.read_text("utf-8"))
    models: dict[str, dict[str, Any]] = {}
    for entry in curated["models"]:
        source = entry.pop("prices_from", None)
        if source:
            found = library_prices(source["provider"], source.get("model", entry["upstream"]))
            if found is not None:
                _apply(entry, found)
        models[entry["id"]] = entry
    known = {(m["provider"], m["upstream"]) for m in models.values()}
    for provider in data.providers:
        ours = PROVIDERS.get(provider.id)
        if ours is None:
            continue
        for info in provider.models:
            if info.deprecated or not re.fullmatch(r"[A-Za-z0-9._:/-]+", info.id) or NOT_TEXT.search(info.id):
                continue
            if ours in KEEP and not KEEP[ours].match(info.id):
                continue
            upstream = _bedrock_upstream(info.id) if ours == "bedrock" else info.id
            if upstream is None:
                continue
            # Looked up by the id callers send: a regional profile's genai id is not one.
            found = library_prices(provider.id, upstream)
            if found is None or (ours, upstream) in known:
                continue
            model_id = f"{ours}/{upstream}"
            if model_id in models:
                continue
            embedding = "embed" in info.id
            context = int(info.context_window or 128_000)
            family = _family(upstream) if ours == "bedrock" else upstream
            entry: dict[str, Any] = {
                "id": model_id,
                "provider": ours,
                "upstream": upstream,
                "context_window": context,
                "max_output_tokens": 1 if embedding else _output_limit(family, context),
                "created": EPOCH,
            }
            if embedding:
                entry["mode"] = "embedding"
            _apply(entry, found)
            models[model_id] = entry
    return {
        "_comment": (
            "GENERATED by scripts/gen_catalog.py (make catalog): do not edit by hand; edit "
            "scripts/catalog_curated.json and regenerate. Prices are USD per 1M tokens from "
            "genai-prices; admin overrides in DynamoDB (aigw models ...) apply on top."
        ),
        "generated_from": f"genai-prices {version('genai-prices')}",
        "models": sorted(models.values(), key=lambda m: m["id"]),
        "aliases": curated.get("aliases", {}),
    }


def main() -> int:
    catalog = generate()
    OUTPUT.write_text(json.dumps(catalog, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(
        f"{OUTPUT.relative_to(ROOT)}: {len(catalog['models'])} models from {catalog['generated_from']}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
