"""The built-in catalog is generated from genai-prices: it prices models as the library does."""

from __future__ import annotations

import json
from decimal import ROUND_CEILING, Decimal
from importlib import resources

import genai_prices
import pytest

from aigw.billing.pricing import cost_micro_usd
from aigw.catalog import builtin
from aigw.chat import Usage

DATA = json.loads(resources.files("aigw").joinpath("data/models.json").read_text("utf-8"))


def test_the_catalog_names_the_library_version_it_came_from() -> None:
    assert DATA["generated_from"] == f"genai-prices {genai_prices.__version__}"


@pytest.mark.parametrize(
    ("model_id", "provider", "ref"),
    [
        ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("anthropic/claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
        ("mistral/mistral-large-latest", "mistral", "mistral-large-latest"),
        # Bedrock, named by the inference profile id its Converse API takes.
        (
            "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "aws",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
    ],
)
def test_a_known_model_costs_what_the_library_says(model_id: str, provider: str, ref: str) -> None:
    model = builtin()[0][model_id]
    usage = Usage(
        prompt_tokens=123_456, completion_tokens=7_890, prompt_tokens_details={"cached_tokens": 23_456}
    )
    library = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=123_456, cache_read_tokens=23_456, output_tokens=7_890),
        ref,
        provider_id=provider,
    )
    expected = int((library.total_price * Decimal(1_000_000)).to_integral_value(rounding=ROUND_CEILING))
    assert cost_micro_usd(model, usage) == expected


def test_every_vendor_with_an_adapter_is_covered_with_limits() -> None:
    models = builtin()[0].values()
    for provider in ("openai", "anthropic", "gemini", "mistral", "groq", "deepseek", "together", "bedrock"):
        ours = [m for m in models if m.provider == provider]
        assert ours, provider
        assert all(0 < m.max_output_tokens <= m.context_window for m in ours)
    assert len(list(models)) >= 100


def test_only_models_the_adapters_can_serve_are_listed() -> None:
    models = builtin()[0]
    not_text = ("image", "audio", "realtime", "tts", "ft:", ".ft-")
    assert not [m for m in models if any(w in m for w in not_text)]
    assert models["bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0"].upstream == (
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    )
