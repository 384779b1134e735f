"""Budget leases: a warm container's slice of a team's budget (decision 19).

A container (one Lambda container, or one local runner worker) takes a *slice* of what a team
may still spend with one transaction, admits its calls from that slice in memory, and hands
back what they used (a *flush*) and what it did not need (a *return*) later, off the caller's
path. The team's billing item therefore sees a few writes per lease instead of two per call.

Items (this module owns the lease item; the others are written through their owners):

=================  ==================  ===================================================
item               pk                  sk
=================  ==================  ===================================================
lease              ``LEASE#<team>#<n>``  ``<lease_id>``   (``n``: a hash of the lease id, 0-7)
=================  ==================  ===================================================

A lease item records what the lease holds (``out_tokens``, ``out_spend``, ``out_credits``,
``out_key``: counted in the team's ``tok_held``/``spend_held``/``credits_reserved`` and the key's
``held``), up to which sequence number its calls' usage has been handed back (``flushed_seq``),
until when it admits (``expires_at``) and from when it may be taken for dead
(``reclaim_after``). It is fixed-size. Every grant, top-up, flush and return is ONE
``TransactWriteItems`` over the team's billing item (:mod:`aigw.billing.account`), the lease
item, and where concerned the key's spend item (:mod:`aigw.billing.key_budgets`) and the rate
window (:mod:`aigw.billing.ratelimit`), conditional on the lease's ``flushed_seq`` and state, so
a lease's amounts move exactly once.

Every admitted call gets the next sequence number of its lease; its usage record is keyed by
``<lease_id>#<seq>`` (:mod:`aigw.usage.records`). A lease whose container died is *reclaimed*
(:mod:`aigw.billing.reclaim`: the sweeper, and an admission about to refuse) once
``reclaim_after`` has passed: the usage of its calls after ``flushed_seq`` is read back from
their records and charged, the rest of its slice is returned, and the item is marked
``reclaimed`` with the sequence numbers it covered. A container that was only slow and comes
back charges its later calls directly.

This module is one lease and its item; the leases a container holds, and what is done with
them after each answer, are :mod:`aigw.billing.held_leases`.
"""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from aigw import clock
from aigw.billing import account, key_budgets, notifications, ratelimit
from aigw.billing.budget import ZERO, Amounts, Limited, is_tight, slice_size
from aigw.billing.config import billing_settings
from aigw.billing.key_budgets import Period
from aigw.billing.plans import Plan
from aigw.billing.rules import BillingState, Funding
from aigw.keys import ApiKey, KeyBudget
from aigw.table import ConditionFailed, Item, gateway_table, serialize
from aigw.usage.records import UsageRecord

logger = Logger(service="aigw-leases")

TEAM_SCOPE = "team"
ACTIVE, RECLAIMED = "active", "reclaimed"
# A lease stops admitting this long before its expiry, so a clock that runs a little behind
# never admits on a lease another container may already take for dead.
_MARGIN_SECONDS = 1
_TOP_UP_ATTEMPTS = 3


LEASE_SHARDS = 8


def lease_pk(team_id: str, lease_id: str) -> str:
    """A team's leases spread over ``LEASE_SHARDS`` partition keys (thousands of busy containers
    renew and flush theirs every half minute)."""
    return f"LEASE#{team_id}#{zlib.crc32(lease_id.encode()) % LEASE_SHARDS}"


def scope_of(key: ApiKey) -> str:
    """Keys with a budget of their own lease separately (their slice includes the key's)."""
    return key.key_id if key.budget is not None else TEAM_SCOPE


def consumption_of(record: UsageRecord, *, key_budget: bool) -> tuple[Amounts, int]:
    """What a usage record used in each budget dimension, and its tokens if credits paid."""
    cost = record.cost_micro_usd
    key = cost if key_budget else 0
    if record.funding == "credits":
        collected = cost - record.uncollected_micro_usd
        return Amounts(credits=collected, key=key), record.total_tokens
    if record.funding == "plan":
        return Amounts(tokens=record.total_tokens, spend=cost, key=key), 0
    return Amounts(key=key), 0


# ---- what can go wrong with a grant ---------------------------------------------------------------


class EntitlementChanged(Exception):
    """The team's entitlement moved since the lease was decided on: decide again on ``state``."""

    def __init__(self, state: BillingState) -> None:
        super().__init__("entitlement changed")
        self.state = state


class LeaseLost(Exception):
    """The lease was reclaimed as dead while this container was away: start another one."""


class Shortfall(Exception):
    """A slice could not be had: the budget left (``available``, this lease's own unused part
    included) does not cover the need in the dimensions ``short``."""

    def __init__(
        self, funding: Funding, short: tuple[str, ...], available: Amounts, state: BillingState
    ) -> None:
        super().__init__(f"short of {', '.join(short)}")
        self.funding = funding
        self.short = short
        self.available = available
        self.state = state


# ---- one lease, as its container sees it -------------------------------------------------------------


@dataclass
class _Call:
    funding: Funding
    worst: Amounts  # in the lease's limited dimensions for this funding


@dataclass
class _Done:
    consumed: Amounts
    credit_tokens: int
    recorded: bool = False


@dataclass(frozen=True)
class View:
    """What a caller is told about the budget left (response headers), from this lease."""

    tokens_left: int | None
    spend_left: int | None
    credits_left: int | None
    key_left: int | None
    period_end: int | None
    requests_left: int | None
    window_tokens_left: int | None


class Lease:
    """A lease held by this container. Guarded by the container's lock."""

    def __init__(self, key: ApiKey, state: BillingState, plan: Plan, funding: Funding, now: int) -> None:
        self.lease_id = "ls" + secrets.token_hex(8)
        self.team_id = key.team_id
        self.scope = scope_of(key)
        self.key_id = key.key_id if key.budget is not None else None
        self.key_budget: KeyBudget | None = key.budget
        self.key_period: Period | None = key_budgets.period_of(key.budget, now) if key.budget else None
        self.key_held = 0  # the key's spend item as last seen (held), with this lease's changes
        self.state = state  # the team's billing item as last seen, with this lease's changes
        self.rev = state.rev
        self.plan = plan
        self.funding = funding
        self.granted_at = now
        self.expires_at = 0
        self.checked_at = clock.now_precise()
        self.out = ZERO
        self.left = ZERO
        self.allowance: ratelimit.Allowance | None = None
        self.next_allowance: ratelimit.Allowance | None = None  # taken ahead for the next minute
        self.window = ratelimit.Window(0)
        self.next_seq = 1
        self.flushed_seq = 0
        self.inflight: dict[int, _Call] = {}
        self.done: dict[int, _Done] = {}
        self.unwritten: dict[int, UsageRecord] = {}
        self.last_need: tuple[Amounts, Funding, int] | None = None
        self.on_table = False
        self.tight = False
        self.closing = False
        self.gone = False
        self.reclaimed_seq = 0
        self.gaps: frozenset[int] = frozenset()
        self.flushed_at = clock.now_precise()
        self.last_used = clock.now_precise()

    # -- dimensions ------------------------------------------------------------------------------

    def limited(self, funding: Funding) -> Limited:
        plan_funded = funding == "plan"
        return Limited(
            tokens=plan_funded and self.plan.monthly_tokens is not None,
            spend=plan_funded and self.plan.spend_cap_micro_usd is not None,
            credits=funding == "credits",
            key=self.key_budget is not None,
        )

    def all_limited(self) -> Limited:
        plan, credits = self.limited("plan"), self.limited("credits")
        return Limited(plan.tokens, plan.spend, True, plan.key or credits.key)

    def remaining(self) -> Amounts:
        """What the team (and key) had left beyond every lease, as last seen."""
        state = self.state
        tokens = (self.plan.monthly_tokens or 0) - state.tok_held
        spend = (self.plan.spend_cap_micro_usd or 0) - state.spend_held
        key = (self.key_budget.limit_micro_usd - self.key_held) if self.key_budget else 0
        return Amounts(tokens=tokens, spend=spend, credits=state.credits, key=key)

    def available(self) -> Amounts:
        """What this lease could still use: the team's remaining plus its own unused slice."""
        return self.remaining() + self.left

    # -- state -----------------------------------------------------------------------------------

    def admit_until(self) -> int:
        until = self.expires_at - _MARGIN_SECONDS
        if not self.state.subscription_governs_period and self.state.period_end is not None:
            until = min(until, self.state.period_end)
        if self.key_period is not None:
            until = min(until, self.key_period.end)
        return until

    def usable(self, now: int) -> bool:
        return self.on_table and not (self.closing or self.gone) and now < self.admit_until()

    def fresh(self) -> bool:
        """The entitlement was checked recently enough to admit on it (decision 19: 5 s)."""
        return clock.now_precise() - self.checked_at < billing_settings().entitlement_max_age_seconds

    def view(self) -> View:
        plan, state, left = self.plan, self.state, self.left
        tokens = spend = credits = key = None
        if plan.monthly_tokens is not None:
            tokens = plan.monthly_tokens - state.tok_held + max(left.tokens, 0)
        if plan.spend_cap_micro_usd is not None:
            spend = plan.spend_cap_micro_usd - state.spend_held + max(left.spend, 0)
        if self.funding == "credits" or state.credits > 0 or left.credits > 0:
            credits = state.credits + max(left.credits, 0)
        if self.key_budget is not None:
            key = self.key_budget.limit_micro_usd - self.key_held + max(left.key, 0)
        requests = window_tokens = None
        minute = ratelimit.minute_of(clock.now())
        allowance = self.allowance if self.allowance is not None and self.allowance.minute == minute else None
        seen = self.window if self.window.minute == minute else ratelimit.Window(minute)
        if plan.requests_per_minute is not None:
            requests = plan.requests_per_minute - seen.requests + (allowance.requests if allowance else 0)
        if plan.tokens_per_minute is not None:
            window_tokens = plan.tokens_per_minute - seen.tokens + (allowance.tokens if allowance else 0)
        period_end = state.period_end
        return View(tokens, spend, credits, key, period_end, requests, window_tokens)

    # -- admitting ----------------------------------------------------------------------------------

    def allowance_covers(self, tokens: int, now: int) -> bool:
        if not ratelimit.applies(self.plan):
            return True
        minute = ratelimit.minute_of(now)
        ahead = self.next_allowance
        if ahead is not None and ahead.minute <= minute:
            if ahead.minute == minute:  # the minute taken ahead has begun
                self.allowance = ahead
                self.window = ratelimit.Window(minute, ahead.requests, ahead.tokens)
            self.next_allowance = None
        allowance = self.allowance
        if allowance is None or allowance.minute != ratelimit.minute_of(now):
            return False
        if self.plan.requests_per_minute is not None and allowance.requests < 1:
            return False
        return self.plan.tokens_per_minute is None or allowance.tokens >= tokens

    def take(self, worst: Amounts, funding: Funding, rl_tokens: int, now: int) -> int | None:
        """Admit one call from the slice, in memory: its sequence number, or None if the slice
        (or the rate allowance) does not cover its worst case."""
        limited = self.limited(funding)
        if not self.usable(now) or not self.left.covers(worst, limited):
            return None
        if not self.allowance_covers(rl_tokens, now):
            return None
        part = worst.only(limited)
        self.left = self.left - part
        if ratelimit.applies(self.plan) and self.allowance is not None:
            a = self.allowance
            self.allowance = ratelimit.Allowance(a.minute, a.requests - 1, a.tokens - rl_tokens)
        seq = self.next_seq
        self.next_seq += 1
        self.inflight[seq] = _Call(funding, part)
        self.last_need = (worst, funding, rl_tokens)
        self.last_used = clock.now_precise()
        return seq

    def finish(self, seq: int, consumed: Amounts, credit_tokens: int) -> None:
        """A call ended: what it did not use goes back to the slice at once (so the next call
        can use it even before anything is written)."""
        call = self.inflight.pop(seq)
        used = consumed.only(self.limited(call.funding))
        self.left = self.left + call.worst - used
        self.done[seq] = _Done(consumed, credit_tokens)
        self.last_used = clock.now_precise()

    def flushable(self) -> tuple[int, Amounts, int]:
        """The recorded calls from ``flushed_seq`` on, without a gap: through which sequence
        number, what they used, and the tokens credits paid for."""
        seq, consumed, credit_tokens = self.flushed_seq, ZERO, 0
        while (done := self.done.get(seq + 1)) is not None and done.recorded:
            seq += 1
            consumed = consumed + done.consumed
            credit_tokens += done.credit_tokens
        return seq, consumed, credit_tokens

    # -- writing ------------------------------------------------------------------------------------

    def _lease_operation(
        self, through: int, outstanding: Amounts, now: int, *, close: bool
    ) -> dict[str, Any]:
        cfg = billing_settings()
        expires = now + cfg.lease_seconds
        key = serialize({"pk": lease_pk(self.team_id, self.lease_id), "sk": self.lease_id})
        if not self.on_table:
            out = self.out + outstanding
            item: dict[str, Any] = {
                "pk": lease_pk(self.team_id, self.lease_id),
                "sk": self.lease_id,
                "type": "lease",
                "team_id": self.team_id,
                "scope": self.scope,
                "state": ACTIVE,
                "out_tokens": out.tokens,
                "out_spend": out.spend,
                "out_credits": out.credits,
                "out_key": out.key,
                "flushed_seq": through,
                "granted_at": self.granted_at,
                "expires_at": expires,
                "reclaim_after": expires + cfg.lease_grace_seconds,
                "ttl": expires + 30 * 86_400,
            }
            if self.key_id is not None and self.key_period is not None:
                item.update(
                    key_id=self.key_id, key_period=self.key_period.sk, key_period_end=self.key_period.end
                )
            return {"Put": {"Item": serialize(item), "ConditionExpression": "attribute_not_exists(pk)"}}
        condition = {
            "ConditionExpression": "#state = :active AND flushed_seq = :fs",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if close:
            return {
                "Delete": {
                    "Key": key,
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": serialize({":active": ACTIVE, ":fs": self.flushed_seq}),
                    **condition,
                }
            }
        return {
            "Update": {
                "Key": key,
                "UpdateExpression": (
                    "SET flushed_seq = :through, expires_at = :exp, reclaim_after = :ra, #ttl = :ttl "
                    "ADD out_tokens :ot, out_spend :os, out_credits :oc, out_key :ok"
                ),
                "ExpressionAttributeNames": {"#state": "state", "#ttl": "ttl"},
                "ExpressionAttributeValues": serialize(
                    {
                        ":active": ACTIVE,
                        ":fs": self.flushed_seq,
                        ":through": through,
                        ":exp": expires,
                        ":ra": expires + cfg.lease_grace_seconds,
                        ":ttl": expires + 30 * 86_400,
                        ":ot": outstanding.tokens,
                        ":os": outstanding.spend,
                        ":oc": outstanding.credits,
                        ":ok": outstanding.key,
                    }
                ),
                **condition,
            }
        }

    def write(
        self,
        now: int,
        *,
        grant: Amounts = ZERO,
        give_back: Amounts = ZERO,
        rate: tuple[int, int] | None = None,
        rate_ahead: bool = False,
        close: bool = False,
        check_rev: bool = True,
    ) -> None:
        """One transaction: take ``grant`` (conditional on the limits and the entitlement), hand
        back the usage of the recorded calls and ``give_back`` of the unused slice, take a rate
        allowance, extend the lease (or delete it: ``close``)."""
        through, consumed, credit_tokens = self.flushable()
        limited = self.all_limited()
        outstanding = grant - consumed.only(limited) - give_back
        team_consumed = Amounts(consumed.tokens, consumed.spend, consumed.credits, 0)
        team_outstanding = Amounts(outstanding.tokens, outstanding.spend, outstanding.credits, 0)
        # The team's item is written only when its amounts move, or to create the lease (the
        # grant is then conditional on the entitlement): a renewal or a rate allowance alone
        # leaves the hot item alone.
        touches_team = (
            not self.on_table or team_consumed != ZERO or team_outstanding != ZERO or credit_tokens != 0
        )
        granting = touches_team and check_rev and (grant.any_positive() or not self.on_table)
        operations: list[dict[str, Any]] = [self._lease_operation(through, outstanding, now, close=close)]
        lease_index, team_index = 0, -1
        if touches_team:
            team_index = len(operations)
            operations.append(
                account.lease_change(
                    self.team_id,
                    consumed=team_consumed,
                    credit_tokens=credit_tokens,
                    outstanding=team_outstanding,
                    rev=self.rev if granting else None,
                    plan=self.plan if grant.any_positive() else None,
                )
            )
        key_index = rate_index = -1
        budget, period = self.key_budget, self.key_period
        if (
            self.key_id is not None
            and budget is not None
            and period is not None
            and (consumed.key or outstanding.key)
        ):
            key_index = len(operations)
            operations.append(
                key_budgets.change(
                    self.key_id,
                    self.team_id,
                    period,
                    consumed=consumed.key,
                    outstanding=outstanding.key,
                    limit=budget.limit_micro_usd if grant.key > 0 else None,
                )
            )
        minute = ratelimit.minute_of(now)
        rate_minute = minute + (60 if rate_ahead else 0)
        if rate is not None:
            rate_index = len(operations)
            operations.append(ratelimit.take(self.team_id, rate_minute, self.plan, *rate))
        if close:
            # Unused allowance goes back only where it could matter: a window more than half used.
            for allowance in (self.allowance, self.next_allowance):
                if allowance is not None and allowance.minute >= minute and self._window_busy(allowance):
                    operations.append(ratelimit.give_back(self.team_id, allowance))
        try:
            gateway_table().transact(operations)
        except ConditionFailed as exc:
            self._refused(
                exc, team_index, lease_index, key_index, rate_index, rate_minute, rev_checked=granting
            )
            raise AssertionError("unreachable") from exc
        if rate is not None and rate_ahead:
            self.next_allowance = ratelimit.Allowance(minute + 60, *rate)
            rate = None
        self._written(
            now, through, consumed, credit_tokens, outstanding, grant, give_back, rate, close, granting
        )

    def _window_busy(self, allowance: ratelimit.Allowance) -> bool:
        if allowance.requests <= 0 and allowance.tokens <= 0:
            return False
        plan, seen = self.plan, self.window
        if seen.minute != allowance.minute:
            return True  # not seen: give it back, to be safe
        busy_requests = plan.requests_per_minute is not None and seen.requests * 2 > plan.requests_per_minute
        busy_tokens = plan.tokens_per_minute is not None and seen.tokens * 2 > plan.tokens_per_minute
        return busy_requests or busy_tokens

    def _written(
        self,
        now: int,
        through: int,
        consumed: Amounts,
        credit_tokens: int,
        outstanding: Amounts,
        grant: Amounts,
        give_back: Amounts,
        rate: tuple[int, int] | None,
        close: bool,
        granting: bool,
    ) -> None:
        for seq in range(self.flushed_seq + 1, through + 1):
            self.done.pop(seq, None)
        self.flushed_seq = through
        self.out = self.out + outstanding
        self.left = self.left + grant - give_back
        self.on_table = not close
        self.expires_at = now + billing_settings().lease_seconds
        self.flushed_at = clock.now_precise()
        s = self.state
        self.state = s.model_copy(
            update={
                "tok_used": s.tok_used + consumed.tokens,
                "tok_held": s.tok_held + consumed.tokens + outstanding.tokens,
                "spend_used": s.spend_used + consumed.spend,
                "spend_held": s.spend_held + consumed.spend + outstanding.spend,
                "credits": s.credits - consumed.credits - outstanding.credits,
                "credits_reserved": s.credits_reserved + outstanding.credits,
            }
        )
        self.key_held += consumed.key + outstanding.key
        if granting:
            self.checked_at = clock.now_precise()  # the grant was conditional on the entitlement
        if rate is not None:
            minute = ratelimit.minute_of(now)
            a = self.allowance if self.allowance is not None and self.allowance.minute == minute else None
            self.allowance = ratelimit.Allowance(
                minute, rate[0] + (a.requests if a else 0), rate[1] + (a.tokens if a else 0)
            )
            seen = self.window if self.window.minute == minute else ratelimit.Window(minute)
            self.window = ratelimit.Window(minute, seen.requests + rate[0], seen.tokens + rate[1])
        if consumed.tokens or consumed.spend:
            _announce_thresholds(self)
        if close:
            logger.debug("lease returned", extra={"lease_id": self.lease_id, "team_id": self.team_id})

    def _refused(
        self,
        exc: ConditionFailed,
        team_index: int,
        lease_index: int,
        key_index: int,
        rate_index: int,
        rate_minute: int,
        *,
        rev_checked: bool,
    ) -> None:
        """Why a lease transaction was refused, raised as what the caller acts on."""

        def item(index: int) -> Item | None:
            return exc.items[index] if 0 <= index < len(exc.items) else None

        if team_index >= 0 and exc.failed(team_index):
            found = item(team_index)
            if found is None:
                account.ensure_item(self.team_id)
                raise EntitlementChanged(account.load(self.team_id))
            fresh = account.state_from(self.team_id, found)
            self.state = fresh
            if rev_checked and fresh.rev != self.rev:
                raise EntitlementChanged(fresh)
        if exc.failed(lease_index):
            self._lost(item(lease_index))
            raise LeaseLost()
        if rate_index >= 0 and exc.failed(rate_index):
            window = ratelimit.Window.from_item(rate_minute, item(rate_index))
            if window.minute == ratelimit.minute_of(clock.now()):  # not a window taken ahead
                self.window = window
            raise RateRefused()
        if key_index >= 0 and exc.failed(key_index):
            self.key_held = key_budgets.held_of(item(key_index))
        raise LimitRefused()

    def _lost(self, item: Item | None) -> None:
        """This lease was reclaimed as dead while this container was away (or is gone)."""
        if self.gone:
            return  # what the reclaim counted is known already; a later refusal says nothing new
        self.gone = True
        self.reclaimed_seq = int((item or {}).get("reclaimed_seq", self.flushed_seq))
        self.gaps = frozenset(int(g) for g in (item or {}).get("gaps", []))
        self.on_table = False
        self.left = ZERO
        logger.warning(
            "lease was reclaimed while its container was alive; its later calls are charged directly",
            extra={"lease_id": self.lease_id, "team_id": self.team_id, "reclaimed_seq": self.reclaimed_seq},
        )

    def charge_late(self) -> None:
        """After a reclaim: charge the recorded calls the reclaim did not count, one by one."""
        for seq in sorted(self.done):
            done = self.done[seq]
            if not done.recorded:
                continue
            if seq <= self.reclaimed_seq and seq not in self.gaps:
                self.done.pop(seq)  # counted by the reclaim
                continue
            _charge_directly(self.team_id, self.key_id, self.key_period, done.consumed, done.credit_tokens)
            self.done.pop(seq)

    # -- growing the slice -----------------------------------------------------------------------------

    def top_up(self, need: Amounts, funding: Funding, rl_tokens: int, now: int) -> None:
        """Grow the slice so it covers ``need`` (one call's worst case), with a rate allowance if
        the plan has limits. Raises :class:`Shortfall` (decided on what the table holds, never
        on a cached view), :class:`RateLimited`, :class:`EntitlementChanged` or
        :class:`LeaseLost`."""
        limited = self.limited(funding)
        fresh = False
        for _ in range(_TOP_UP_ATTEMPTS + 1):
            short = self._short(need, limited)
            if short:
                if fresh:
                    raise Shortfall(funding, short, self.available(), self.state)
                self.refresh()
                fresh = True
                continue
            rate = None
            if not self.allowance_covers(rl_tokens, now):
                minute = ratelimit.minute_of(now)
                seen = self.window if self.window.minute == minute else ratelimit.Window(minute)
                limited_rate = ratelimit.exceeded(self.plan, seen, 1, rl_tokens, now)
                if limited_rate is not None:
                    raise limited_rate
                rate = ratelimit.size(self.plan, seen, rl_tokens)
            want = slice_size(need, self.left, self.remaining(), limited)
            try:
                self.write(now, grant=want, rate=rate)
            except (LimitRefused, RateRefused):
                fresh = True  # what was there came back with the refusal: size again on it
                continue
            self.tight = is_tight(need, self.remaining(), limited)
            return
        raise Shortfall(
            funding, self._short(need, limited) or limited.dimensions(), self.available(), self.state
        )

    def refresh(self) -> None:
        """Read what the team (and key) have left now."""
        fresh = account.remember(account.load(self.team_id))
        if fresh.rev != self.rev:
            raise EntitlementChanged(fresh)
        self.state = fresh
        if self.key_id is not None and self.key_budget is not None:
            self.key_held = key_budgets.spend(self.key_id, self.key_budget, self.granted_at).held

    def cover(self, deficit: int, now: int) -> int:
        """A credit-funded call cost more than its slice had left: take the difference from
        the team's credits, as far as they go. Returns what could NOT be collected."""
        for _ in range(3):
            if deficit <= 0:
                return 0
            try:
                self.write(now, grant=Amounts(credits=deficit), check_rev=False)
                return 0
            except LimitRefused:
                have = max(self.state.credits, 0)
                if have >= deficit:
                    continue
                if have > 0:
                    try:
                        self.write(now, grant=Amounts(credits=have), check_rev=False)
                    except LimitRefused:
                        continue
                return deficit - have
        return deficit

    def _short(self, need: Amounts, limited: Limited) -> tuple[str, ...]:
        available = self.available()
        return tuple(d for d in limited.dimensions() if getattr(available, d) < getattr(need, d))


class LimitRefused(Exception):
    """A lease write was refused by a budget's condition (the team's or the key's counters
    moved since this container last read them); its view of them is refreshed."""


class RateRefused(Exception):
    """A lease write was refused by this minute's rate window."""


def _charge_directly(
    team_id: str, key_id: str | None, key_period: Period | None, consumed: Amounts, credit_tokens: int
) -> None:
    """Count usage on the team (and key) without a lease: credits never go below zero."""
    for _ in range(3):
        operations = [
            account.lease_change(
                team_id,
                consumed=Amounts(consumed.tokens, consumed.spend, consumed.credits, 0),
                credit_tokens=credit_tokens,
                outstanding=ZERO,
            )
        ]
        if key_id is not None and key_period is not None and consumed.key:
            operations.append(
                key_budgets.change(
                    key_id, team_id, key_period, consumed=consumed.key, outstanding=0, limit=None
                )
            )
        try:
            gateway_table().transact(operations)
            return
        except ConditionFailed as exc:
            state = account.state_from(team_id, exc.items[0] if exc.items else None)
            short = consumed.credits - max(state.credits, 0)
            logger.warning(
                "credits could not cover a late charge in full",
                extra={"team_id": team_id, "uncollected_micro_usd": short},
            )
            consumed = Amounts(consumed.tokens, consumed.spend, max(state.credits, 0), consumed.key)


def _announce_thresholds(lease: Lease) -> None:
    """Quota 80 % and 100 % notifications, once per period each, as usage reaches the counters."""
    plan, state = lease.plan, lease.state
    if state.period_start is None:
        return
    shares = []
    if plan.monthly_tokens:
        shares.append(state.tok_used / plan.monthly_tokens)
    if plan.spend_cap_micro_usd:
        shares.append(state.spend_used / plan.spend_cap_micro_usd)
    share = max(shares, default=0.0) * 100
    for level, sent in ((80, state.warned_80), (100, state.warned_100)):
        if share < level or sent == state.period_start:
            continue
        if account.note_threshold(lease.team_id, level, state.period_start):
            notifications.emit("Quota Threshold Reached", lease.team_id, percent=level, plan_id=plan.plan_id)
        field = "warned_100" if level >= 100 else "warned_80"
        lease.state = lease.state.model_copy(update={field: state.period_start})
