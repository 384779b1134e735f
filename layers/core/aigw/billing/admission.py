"""Admission: a call is let through only once its worst case is covered by a budget lease.

The API every kind of call uses (chat completions, Anthropic messages, prompt APIs; later
embeddings and responses), in this order, before any vendor is contacted::

    terms = admission.terms_for(key)              # once per call: who pays, on which plan
    estimate = admission.Estimate(prompt_tokens=n, output_limit=caller_limit)
    admitted = admission.admit(terms, model, estimate)   # 402 / 429 / 403 / 503, or admitted
    send admitted.output_limit upstream              # what was reserved is what the vendor gets

then :mod:`aigw.billing.meter` settles the call. ``Estimate`` is generic: a call that produces
no output (embeddings) says ``produces_output=False`` and reserves its input alone.

A warm container with a live lease admits in memory: no DynamoDB round trip before the vendor
(:mod:`aigw.billing.leases`). Otherwise admission takes or grows a lease with one transaction,
and fails closed: a table it cannot reach is a 503 and the vendor is never called.

When the budget left cannot cover the plan's default output limit but covers the prompt and a
short answer, the call is admitted with its output limit capped to what the team can afford
(``X-Billing-Output-Capped``; the vendor stops with ``finish_reason: length``). A 402 comes only
when not even that fits, after dead containers' leases have been reclaimed, and names the
funding that ran out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aigw import clock, request_context
from aigw.billing import (
    account,
    budget,
    held_leases,
    leases,
    notifications,
    ratelimit,
    reclaim,
    rules,
    stripe_links,
)
from aigw.billing.budget import MIN_CAPPED_OUTPUT, Amounts
from aigw.billing.key_budgets import period_of
from aigw.billing.plans import Plan
from aigw.billing.rules import BillingState, Decision, Funding
from aigw.chat import ChatRequest, ModelInfo
from aigw.errors import GatewayError, InvalidRequest, PaymentRequired, PermissionDenied, ServiceUnavailable
from aigw.keys import ApiKey
from aigw.tokens import estimate_messages

_ATTEMPTS = 4


@dataclass(frozen=True)
class Estimate:
    """A call's size before it is made, whatever its kind: the input's estimated tokens and
    the output limit the caller asked for (``None``: the plan's default applies)."""

    prompt_tokens: int
    output_limit: int | None = None
    produces_output: bool = True

    @classmethod
    def for_chat(cls, request: ChatRequest) -> Estimate:
        return cls(prompt_tokens=estimate_messages(request.messages), output_limit=request.output_limit)


@dataclass(frozen=True)
class Terms:
    """Who pays for a call and on which plan: decided once per call (the fallback chain and
    every attempt's admission use the same terms)."""

    key: ApiKey
    state: BillingState
    plan: Plan
    funding: Funding
    warning: str | None = None
    fresh: bool = False  # decided on the table's state read for this call

    @property
    def team_id(self) -> str:
        return self.key.team_id


@dataclass(frozen=True)
class Admitted:
    """One admitted call: its place in a lease and what it may use."""

    terms: Terms
    model: ModelInfo
    lease_id: str
    seq: int
    funding: Funding
    prompt_tokens: int  # the padded estimate that was reserved
    output_limit: int  # reserved, and what the vendor must be sent (0: the call has no output)
    worst: Amounts
    capped: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def key_budget(self) -> bool:
        return self.terms.key.budget is not None


# ---- terms ------------------------------------------------------------------------------------


def terms_for(key: ApiKey) -> Terms:
    """The terms of a call by ``key``: from the container's live lease when its view of the
    entitlement is fresh (no round trip), else from the team's billing item. Refusals (402)
    are only ever decided on the item as it is in the table."""
    box = held_leases.container()
    now = clock.now()
    with box.lock:
        lease = box.current(key)
        if lease is not None and (lease.gone or (lease.on_table and not lease.usable(now))):
            # Expired (or past its period): handed back after this answer, whatever it is.
            box.retire(lease)
            request_context.defer(held_leases.return_closing)
            lease = None
        if lease is not None and lease.usable(now) and lease.key_budget == key.budget:
            if not lease.fresh():
                held_leases.check_entitlement(lease)  # one read: the view is older than 5 s
            if box.current(key) is lease and lease.usable(now):
                decision = rules.decide(lease.state, now)
                if decision.allowed and decision.plan == lease.plan and decision.funding == lease.funding:
                    return Terms(key, lease.state, lease.plan, lease.funding, decision.warning)
    return decide(key, account.cached_state(key.team_id), fresh=False)


def decide(key: ApiKey, state: BillingState, *, fresh: bool) -> Terms:
    for _ in range(_ATTEMPTS):
        now = clock.now()
        if rules.needs_rollover(state, now):
            account.roll_period(state, now)
            state, fresh = account.remember(account.load(key.team_id)), True
            continue
        decision = rules.decide(state, now)
        if not decision.allowed:
            if not fresh:  # never refuse on a cached view
                state, fresh = account.remember(account.load(key.team_id)), True
                continue
            raise _refuse(state, decision)
        assert decision.plan is not None
        assert decision.funding is not None
        return Terms(key, state, decision.plan, decision.funding, decision.warning, fresh)
    raise _contended()


def _refuse(state: BillingState, decision: Decision) -> GatewayError:
    grace_over = decision.code == "payment_failed" and state.sub_status == "past_due"
    # Grace ran out with no webhook to say so: the first refusal tells the operator, once.
    if grace_over and not state.suspended_notified and account.note_suspension(state):
        notifications.emit("Access Suspended", state.team_id, reason="grace_period_ended")
    return stripe_links.refusal_error(state, decision)


def _contended() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The team's billing state kept changing; retry shortly",
        code="admission_contended",
        headers={"Retry-After": "1"},
    )


# ---- admission ----------------------------------------------------------------------------------


def admit(terms: Terms, model: ModelInfo, estimate: Estimate) -> Admitted:
    """Admit one call to ``model``, or raise why not: 403 (model not in the plan), 429 (rate
    limits), 402 (money), 503 (the table cannot be reached: fail closed)."""
    for _ in range(_ATTEMPTS):
        terms = _model_allowed(terms, model)
        try:
            admitted = _admit(terms, model, estimate)
        except leases.EntitlementChanged as changed:
            terms = decide(terms.key, account.remember(changed.state), fresh=True)
            continue
        except leases.LeaseLost:
            continue
        request_context.add_headers(admitted.headers)
        return admitted
    raise _contended()


def _model_allowed(terms: Terms, model: ModelInfo) -> Terms:
    if terms.plan.allows_model(model.id):
        return terms
    if not terms.fresh:  # never refuse on a cached view: the plan may have just changed
        terms = decide(terms.key, account.remember(account.load(terms.team_id)), fresh=True)
        if terms.plan.allows_model(model.id):
            return terms
    raise PermissionDenied(
        f"The team's plan '{terms.plan.plan_id}' does not include model '{model.id}'; use a model "
        "it includes (GET /v1/models lists them) or move the team to a plan that does",
        code="model_not_in_plan",
        param="model",
    )


def output_limit_for(plan: Plan, model: ModelInfo, estimate: Estimate) -> int:
    """The output limit to reserve and send: the caller's, else the plan's default, never more
    than the model can write."""
    if not estimate.produces_output:
        return 0
    if estimate.output_limit is not None:
        model_max = getattr(model, "max_output_tokens", None) or model.context_window
        if estimate.output_limit > model_max:
            raise InvalidRequest(
                f"max_tokens is {estimate.output_limit}, more than model '{model.id}' can write "
                f"({model_max}); lower it",
                code="max_tokens_too_large",
                param="max_tokens",
            )
        return estimate.output_limit
    limit = plan.default_max_tokens
    model_max = getattr(model, "max_output_tokens", None)
    return min(limit, model_max) if isinstance(model_max, int) and model_max > 0 else limit


def _lease_for(box: held_leases.Container, terms: Terms, now: int) -> leases.Lease:
    lease = box.current(terms.key)
    if lease is not None and (
        lease.rev != terms.state.rev
        or lease.plan != terms.plan
        or lease.funding != terms.funding
        or lease.key_budget != terms.key.budget
        or lease.gone  # reclaimed under a call that outlived it: a new lease takes over
        or (lease.on_table and not lease.usable(now))
    ):
        box.retire(lease)
        request_context.defer(held_leases.return_closing)  # handed back once its calls have ended
        lease = None
    return lease or box.start(terms.key, terms.state, terms.plan, terms.funding, now)


def _admit(terms: Terms, model: ModelInfo, estimate: Estimate) -> Admitted:
    plan = terms.plan
    prompt = budget.prompt_estimate(estimate.prompt_tokens)
    output = output_limit_for(plan, model, estimate)
    now = clock.now()
    if ratelimit.applies(plan):
        ratelimit.check_request_size(plan, prompt + output, now)
    box = held_leases.container()
    keyed = terms.key.budget is not None
    with box.lock:
        lease = _lease_for(box, terms, now)
        fundings: list[Funding] = [terms.funding] + (["credits"] if terms.funding == "plan" else [])
        shortfalls: dict[Funding, leases.Shortfall] = {}
        for round_ in range(2):
            for funding in fundings:
                if funding != terms.funding and lease.available().credits <= 0:
                    continue  # no credits to pay beyond the plan
                worst = budget.worst_case(model, prompt, output, funding, key_budget=keyed)
                if funding != terms.funding and worst.credits <= 0:
                    continue  # a free model cannot be paid for: it never passes the plan's quota
                admitted = _take(lease, terms, model, funding, prompt, output, worst, now, capped=False)
                if isinstance(admitted, leases.Shortfall):
                    shortfalls[funding] = admitted
                    continue
                return admitted
            # Before refusing: budget held by dead containers' leases comes back.
            if round_ == 0 and reclaim.reclaim_expired(terms.team_id, now) > 0:
                lease.refresh()
                shortfalls.clear()
                continue
            break
        if estimate.output_limit is None and estimate.produces_output:
            for funding in fundings:
                if funding != terms.funding and lease.available().credits <= 0:
                    continue
                limited = lease.limited(funding)
                fits = budget.affordable_output(model, prompt, lease.available(), limited, funding)
                cap = min(fits, output)
                if cap < min(MIN_CAPPED_OUTPUT, output):
                    continue
                worst = budget.worst_case(model, prompt, cap, funding, key_budget=keyed)
                if funding != terms.funding and worst.credits <= 0:
                    continue
                admitted = _take(lease, terms, model, funding, prompt, cap, worst, now, capped=True)
                if isinstance(admitted, leases.Shortfall):
                    shortfalls[funding] = admitted
                    continue
                return admitted
        raise _budget_refusal(terms, lease, shortfalls, model, prompt, output, explicit=estimate.output_limit)


def _take(
    lease: leases.Lease,
    terms: Terms,
    model: ModelInfo,
    funding: Funding,
    prompt: int,
    output: int,
    worst: Amounts,
    now: int,
    *,
    capped: bool,
) -> Admitted | leases.Shortfall:
    tokens = prompt + output
    seq = lease.take(worst, funding, tokens, now)
    if seq is None:
        try:
            lease.top_up(worst, funding, tokens, now)
        except leases.Shortfall as short:
            return short
        seq = lease.take(worst, funding, tokens, now)
        if seq is None:  # pragma: no cover - a top-up always covers the call it was sized for
            raise _contended()
    return Admitted(
        terms=terms,
        model=model,
        lease_id=lease.lease_id,
        seq=seq,
        funding=funding,
        prompt_tokens=prompt,
        output_limit=output,
        worst=worst,
        capped=capped,
        headers=billing_headers(terms, lease.view(), funding, capped_output=output if capped else None),
    )


# ---- what the caller is told ----------------------------------------------------------------------


def billing_headers(
    terms: Terms, view: leases.View, funding: Funding, *, capped_output: int | None = None
) -> dict[str, str]:
    """``X-Billing-*`` and ``x-ratelimit-*`` for an answer: known before the first byte, from
    the reservation (a plain answer refreshes them with the call's real usage)."""
    plan, out = terms.plan, {}
    if funding == "credits" and view.credits_left is not None:
        out["X-Billing-Credits-Remaining-Micro-Usd"] = str(max(view.credits_left, 0))
    if funding == "plan":
        if view.tokens_left is not None and plan.monthly_tokens is not None:
            out["X-Billing-Quota-Tokens-Limit"] = str(plan.monthly_tokens)
            out["X-Billing-Quota-Tokens-Remaining"] = str(max(view.tokens_left, 0))
        if view.spend_left is not None:
            out["X-Billing-Spend-Remaining-Micro-Usd"] = str(max(view.spend_left, 0))
        if view.period_end is not None:
            out["X-Billing-Period-End"] = clock.iso(view.period_end)
    key_budget = terms.key.budget
    if key_budget is not None and view.key_left is not None:
        out["X-Billing-Key-Budget-Limit-Micro-Usd"] = str(key_budget.limit_micro_usd)
        out["X-Billing-Key-Budget-Remaining-Micro-Usd"] = str(max(view.key_left, 0))
        out["X-Billing-Key-Budget-Resets-At"] = clock.iso(period_of(key_budget, clock.now()).end)
    if capped_output is not None:
        out["X-Billing-Output-Capped"] = str(capped_output)
    if terms.warning:
        out["X-Billing-Warning"] = terms.warning
    elif funding == "plan" and plan.monthly_tokens and view.tokens_left is not None:
        left = max(view.tokens_left, 0)
        if left * 5 <= plan.monthly_tokens:  # 80 % used: say so before the 402 does
            out["X-Billing-Warning"] = f"quota_low; {left} of {plan.monthly_tokens} monthly tokens left"
    if capped_output is not None and "X-Billing-Warning" not in out:
        out["X-Billing-Warning"] = f"output_capped; the budget left pays for {capped_output} output tokens"
    out.update(ratelimit.headers(plan, view.requests_left or 0, view.window_tokens_left or 0, clock.now()))
    return out


def _budget_refusal(
    terms: Terms,
    lease: leases.Lease,
    shortfalls: dict[Funding, leases.Shortfall],
    model: ModelInfo,
    prompt: int,
    output: int,
    *,
    explicit: int | None,
) -> GatewayError:
    """The 402 naming what ran out: the plan's tokens or spend cap, the credits, or the key's
    own budget (decided on what the table held, returned with the refused grant)."""
    state = lease.state
    plan = terms.plan
    primary = shortfalls.get(terms.funding)
    short = primary.short if primary else ()
    available = lease.available()
    least = min(output, MIN_CAPPED_OUTPUT) if explicit is None else output
    tokens_needed = prompt + least
    cost_needed = budget.call_cost(model, prompt, least)
    what = "this call" if explicit is not None else "even a short answer to this call"
    lower = " (lower max_tokens, or upgrade)" if explicit is not None else ""
    credits_note = ""
    if terms.funding == "plan" and "credits" in shortfalls:
        credits_note = (
            f" The team's prepaid credits ({max(shortfalls['credits'].available.credits, 0)} micro-USD) "
            "cannot pay for it either."
        )
    if short == ("key",) or (not short and "key" in _all_short(shortfalls)):
        return _key_refusal(terms, available.key, cost_needed, what)
    if terms.funding == "credits":
        return stripe_links.payment_required(
            state,
            "credits_exhausted",
            f"The team's prepaid credits pay for its calls, and {max(available.credits, 0)} micro-USD "
            f"are left; {what} may cost up to {cost_needed} micro-USD "
            f"({_held(state.credits_reserved - lease.out.credits)}).",
            needs_micro_usd=cost_needed - max(available.credits, 0),
        )
    if "tokens" in short and plan.monthly_tokens is not None:
        return stripe_links.payment_required(
            state,
            "quota_exhausted",
            f"The plan's monthly tokens pay for this team's calls, and {max(available.tokens, 0)} of "
            f"the plan's {plan.monthly_tokens} monthly tokens are left "
            f"({_held(state.tok_held - state.tok_used - lease.out.tokens)}); {what} may use up to "
            f"{tokens_needed}{lower}.{credits_note}",
            returns_at=state.period_end,
            # Credits pay what goes beyond the plan: a machine top-up must cover the whole call.
            needs_micro_usd=cost_needed - max(state.credits, 0),
        )
    if plan.spend_cap_micro_usd is not None:
        return stripe_links.payment_required(
            state,
            "spend_cap_reached",
            f"The plan's spend cap of {plan.spend_cap_micro_usd} micro-USD for this period has "
            f"{max(available.spend, 0)} micro-USD left "
            f"({_held(state.spend_held - state.spend_used - lease.out.spend)}), and {what} may cost "
            f"up to {cost_needed}{lower}.{credits_note}",
            returns_at=state.period_end,
        )
    return stripe_links.payment_required(  # pragma: no cover - a shortfall always names a limit
        state, "quota_exhausted", f"The team's budget cannot cover {what}.{credits_note}"
    )


def _all_short(shortfalls: dict[Funding, leases.Shortfall]) -> set[str]:
    return {d for s in shortfalls.values() for d in s.short}


def _held(amount: int) -> str:
    return f"{max(amount, 0)} more held by calls in flight and other containers' leases"


def _key_refusal(terms: Terms, left: int, cost: int, what: str) -> PaymentRequired:
    key_budget = terms.key.budget
    assert key_budget is not None
    resets = period_of(key_budget, clock.now()).end
    err = PaymentRequired(
        f"This API key's own budget of {key_budget.limit_micro_usd} micro-USD per {key_budget.period} "
        f"has {max(left, 0)} micro-USD left, and {what} may cost up to {cost} micro-USD. It resets at "
        f"{clock.iso(resets)}; an admin or the team can raise it.",
        code="key_budget_exhausted",
        extra={
            "team_id": terms.team_id,
            "key_id": terms.key.key_id,
            "access_returns_at": clock.iso(resets),
        },
    )
    err.title = "Key budget exhausted"
    return err
