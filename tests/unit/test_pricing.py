from __future__ import annotations

from decimal import Decimal

import pytest

from aigw.billing.pricing import cost_micro_usd
from aigw.catalog import catalog
from aigw.chat import ModelInfo, Usage
from aigw.errors import NotFound

MODEL = ModelInfo(
    id="x/y",
    provider="x",
    upstream="y",
    context_window=1,
    max_output_tokens=1,
    input_per_mtok=Decimal("2.50"),
    cached_input_per_mtok=Decimal("1.25"),
    output_per_mtok=Decimal("10.00"),
)


def test_cost_is_tokens_times_price_per_million_in_micro_usd() -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=500, total_tokens=1_500)
    assert cost_micro_usd(MODEL, usage) == 1_000 * 2.5 + 500 * 10  # 7_500 micro-USD = $0.0075


def test_cached_prompt_tokens_are_charged_at_the_cached_price() -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=0, prompt_tokens_details={"cached_tokens": 400})
    assert cost_micro_usd(MODEL, usage) == 600 * 2.5 + 400 * 1.25


def test_fractions_of_a_micro_dollar_round_up() -> None:
    cheap = MODEL.model_copy(update={"input_per_mtok": Decimal("0.15")})
    assert cost_micro_usd(cheap, Usage(prompt_tokens=1)) == 1
    assert cost_micro_usd(cheap, Usage(prompt_tokens=10)) == 2


def test_catalog_resolves_ids_and_aliases() -> None:
    assert catalog().resolve("openai/gpt-4o-mini").upstream == "gpt-4o-mini"
    assert catalog().resolve("default").id == "mock/echo"
    with pytest.raises(NotFound) as err:
        catalog().resolve("openai/gpt-99")
    assert err.value.code == "model_not_found"
