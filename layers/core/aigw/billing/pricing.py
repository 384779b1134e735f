"""Cost of a call in integer micro-USD, from catalog prices (USD per 1M tokens).

USD per million tokens is numerically micro-USD per token, so cost is a plain sum of
tokens times prices, rounded up to a whole micro-dollar: we never under-charge by rounding.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from aigw.chat import ModelInfo, Usage


def cost_micro_usd(model: ModelInfo, usage: Usage) -> int:
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    fresh = usage.prompt_tokens - cached
    total = (
        Decimal(fresh) * model.input_per_mtok
        + Decimal(cached) * model.cached_input_per_mtok
        + Decimal(usage.completion_tokens) * model.output_per_mtok
    )
    return int(total.to_integral_value(rounding=ROUND_CEILING))
