"""The arithmetic of budgets: a call's worst case, how big a slice to lease, and how long an
answer the budget left can still pay for. Pure functions, no table.

A budget has up to four dimensions, each in its own unit:

- ``tokens``: the plan's monthly tokens (``tok_held`` on the team's billing item);
- ``spend``: the plan's spend cap in micro-USD (``spend_held``);
- ``credits``: prepaid credits in micro-USD (``credits``);
- ``key``: the calling key's own spend cap for its day or month, in micro-USD.

A plan-funded call draws on tokens, spend and key; a credit-funded call on credits and key. A
dimension without a limit is not leased at all (its amount is only counted once used).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import ROUND_FLOOR, Decimal

from aigw.billing.pricing import cost_micro_usd
from aigw.billing.rules import Funding
from aigw.catalog import ModelInfo
from aigw.chat import Usage

# How many calls' worst case a slice is sized for when the budget is roomy, and which share of
# what is left one slice may take when it is not (so that K containers can share the tail).
TARGET_CALLS = 16
SHARE = 4
# The shortest answer worth admitting with a capped output limit (issue 11, item 4).
MIN_CAPPED_OUTPUT = 16
# Padding of the prompt estimate: tokenizers differ, the estimate must not fall short.
PROMPT_PAD_NUMERATOR, PROMPT_PAD_DENOMINATOR, PROMPT_PAD_TOKENS = 5, 4, 16


@dataclass(frozen=True)
class Amounts:
    """An amount in each budget dimension (see the module docstring)."""

    tokens: int = 0
    spend: int = 0
    credits: int = 0
    key: int = 0

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def covers(self, other: Amounts, limited: Limited) -> bool:
        """Every limited dimension of ``self`` is at least ``other``'s."""
        return all(getattr(self, d) >= getattr(other, d) for d in limited.dimensions())

    def only(self, limited: Limited) -> Amounts:
        """This amount in the limited dimensions, zero elsewhere."""
        return Amounts(
            *(getattr(self, f.name) if f.name in limited.dimensions() else 0 for f in fields(self))
        )

    def any_positive(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))


ZERO = Amounts()
DIMENSIONS = ("tokens", "spend", "credits", "key")


@dataclass(frozen=True)
class Limited:
    """Which dimensions have a limit for a lease (and so are leased in slices)."""

    tokens: bool = False
    spend: bool = False
    credits: bool = False
    key: bool = False

    def dimensions(self) -> tuple[str, ...]:
        return tuple(d for d in DIMENSIONS if getattr(self, d))


def prompt_estimate(raw_tokens: int) -> int:
    """A padded estimate of a prompt's tokens: reserved before the vendor says what it was."""
    return raw_tokens * PROMPT_PAD_NUMERATOR // PROMPT_PAD_DENOMINATOR + PROMPT_PAD_TOKENS


def call_cost(model: ModelInfo, prompt_tokens: int, output_tokens: int) -> int:
    return cost_micro_usd(model, Usage(prompt_tokens=prompt_tokens, completion_tokens=output_tokens))


def worst_case(
    model: ModelInfo, prompt_tokens: int, output_tokens: int, funding: Funding, *, key_budget: bool
) -> Amounts:
    """What a call may use at most, in the dimensions of its funding."""
    tokens = prompt_tokens + output_tokens
    cost = call_cost(model, prompt_tokens, output_tokens)
    key = cost if key_budget else 0
    if funding == "credits":
        return Amounts(credits=cost, key=key)
    return Amounts(tokens=tokens, spend=cost, key=key)


def used(tokens: int, cost: int, funding: Funding, *, key_budget: bool) -> Amounts:
    key = cost if key_budget else 0
    if funding == "credits":
        return Amounts(credits=cost, key=key)
    return Amounts(tokens=tokens, spend=cost, key=key)


def slice_size(need: Amounts, left: Amounts, remaining: Amounts, limited: Limited) -> Amounts:
    """How much to lease on top of what a lease has ``left`` so that it covers ``need`` (one
    call's worst case): ``TARGET_CALLS`` worst cases while the budget is roomy, a ``1/SHARE``
    share of what ``remaining`` once that is smaller, never less than the call needs.
    Dimensions without a limit are not leased."""
    out: dict[str, int] = {}
    for dim in DIMENSIONS:
        if not getattr(limited, dim):
            out[dim] = 0
            continue
        n, have, rest = getattr(need, dim), getattr(left, dim), getattr(remaining, dim)
        want = min(n * TARGET_CALLS, max(rest // SHARE, n))
        out[dim] = max(want - have, n - have, 0)
    return Amounts(**out)


def is_tight(need: Amounts, remaining_after: Amounts, limited: Limited) -> bool:
    """Close to exhaustion: what is left after a grant is under ``SHARE`` calls' worst case in
    some limited dimension. A tight lease hands back what it did not use after each call, so
    other containers (and the 402) see the budget as it really is."""
    return any(getattr(remaining_after, d) < getattr(need, d) * SHARE for d in limited.dimensions())


def affordable_output(
    model: ModelInfo, prompt_tokens: int, available: Amounts, need_dims: Limited, funding: Funding
) -> int:
    """The longest output the ``available`` budget can pay for after the prompt (may be <= 0)."""
    best: int | None = None
    cost_dims = ("credits",) if funding == "credits" else ("spend",)
    prompt_cost = call_cost(model, prompt_tokens, 0)
    price = Decimal(model.output_per_mtok)
    for dim in need_dims.dimensions():
        have = getattr(available, dim)
        if dim == "tokens":
            fits = have - prompt_tokens
        elif dim in cost_dims or dim == "key":
            if price <= 0:
                fits = 0 if have < prompt_cost else 2**31
            else:
                fits = int(((Decimal(have - prompt_cost)) / price).to_integral_value(rounding=ROUND_FLOOR))
                # cost rounds up to a whole micro-dollar: step back until it really fits
                while fits > 0 and call_cost(model, prompt_tokens, fits) > have:
                    fits -= 1
        else:
            continue
        best = fits if best is None else min(best, fits)
    return best if best is not None else 2**31
