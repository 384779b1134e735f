"""The budget leases this container holds (one Lambda container, one local runner worker), and
what happens to them after each answer: a call's usage back into its slice, the lease's upkeep
(flush, renewal, top-up, entitlement check) and its return once it is retired or idle.

Admission (:mod:`aigw.billing.admission`) finds a call's lease here; the rest runs after the
answer (:func:`aigw.request_context.defer`). The lease item and its transactions are
:mod:`aigw.billing.leases`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger

from aigw import clock
from aigw.billing import account, ratelimit
from aigw.billing.budget import Amounts
from aigw.billing.config import billing_settings
from aigw.billing.leases import (
    EntitlementChanged,
    Lease,
    LeaseLost,
    LimitRefused,
    RateRefused,
    Shortfall,
    View,
    scope_of,
)
from aigw.billing.plans import Plan
from aigw.billing.rules import BillingState, Funding
from aigw.errors import RateLimited
from aigw.keys import ApiKey
from aigw.usage import records as usage_records
from aigw.usage.records import UsageRecord

logger = Logger(service="aigw-leases")

# Flush after this many finished calls even if the flush interval has not passed.
_FLUSH_CALLS = 64


class Container:
    """The leases of this process (one Lambda container, one runner worker)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.leases: dict[tuple[str, str], Lease] = {}
        self.closing: dict[str, Lease] = {}

    def current(self, key: ApiKey) -> Lease | None:
        return self.leases.get((key.team_id, scope_of(key)))

    def find(self, lease_id: str) -> Lease | None:
        for lease in self.leases.values():
            if lease.lease_id == lease_id:
                return lease
        return self.closing.get(lease_id)

    def start(self, key: ApiKey, state: BillingState, plan: Plan, funding: Funding, now: int) -> Lease:
        """A new lease for the key's scope (written at its first grant), the old one closing."""
        old = self.current(key)
        if old is not None:
            self.retire(old)
        lease = Lease(key, state, plan, funding, now)
        self.leases[(key.team_id, lease.scope)] = lease
        return lease

    def retire(self, lease: Lease) -> None:
        """Stop admitting on a lease; it is returned once its calls have ended."""
        lease.closing = True
        if self.leases.get((lease.team_id, lease.scope)) is lease:
            del self.leases[(lease.team_id, lease.scope)]
        self.closing[lease.lease_id] = lease

    def all(self) -> list[Lease]:
        return [*self.leases.values(), *self.closing.values()]


_container = Container()


def container() -> Container:
    return _container


@contextmanager
def as_container(other: Container) -> Iterator[Container]:
    """Run as another container (tests: several Lambda containers in one process)."""
    global _container
    previous, _container = _container, other
    try:
        yield other
    finally:
        _container = previous


def forget() -> None:
    """Drop this process's leases without returning them, as a container that dies does."""
    global _container
    _container = Container()


if hasattr(os, "register_at_fork"):
    # A forked runner worker is a new container: it must not share its parent's leases.
    os.register_at_fork(after_in_child=forget)


# ---- after a call -------------------------------------------------------------------------------------


def finish(lease_id: str, seq: int, consumed: Amounts, credit_tokens: int) -> View | None:
    """A call ended with ``consumed``: its unused reservation is back in the slice at once.
    Returns the lease's view after it (for an answer's headers)."""
    with _container.lock:
        lease = _container.find(lease_id)
        if lease is None or seq not in lease.inflight:
            logger.error("a call ended on a lease this container does not hold", extra={"lease_id": lease_id})
            return None
        lease.finish(seq, consumed, credit_tokens)
        return None if lease.gone else lease.view()


def collect(lease_id: str, seq: int) -> int:
    """A credit-funded call that cost more than its lease had left takes the difference from
    the team's credits, as far as they go; returns what could not be collected (recorded on
    the usage record, and never taken below zero)."""
    with _container.lock:
        lease = _container.find(lease_id)
        done = lease.done.get(seq) if lease is not None else None
        if lease is None or done is None or lease.gone:
            return 0
        if done.consumed.credits <= 0 or lease.left.credits >= 0:
            return 0
        try:
            uncollected = min(lease.cover(-lease.left.credits, clock.now()), done.consumed.credits)
        except (LeaseLost, EntitlementChanged, RateRefused):
            return 0
        except Exception:
            # The table could not be reached and nothing was taken; the call's usage record must
            # still be written (the meter writes it after this).
            logger.exception("collecting a call's overrun failed", extra={"lease_id": lease_id, "seq": seq})
            return 0
        if uncollected > 0:
            c = done.consumed
            done.consumed = Amounts(c.tokens, c.spend, c.credits - uncollected, c.key)
            lease.left = lease.left + Amounts(credits=uncollected)
            logger.warning(
                "credits could not cover a call's overrun in full",
                extra={"lease_id": lease_id, "seq": seq, "uncollected_micro_usd": uncollected},
            )
        return uncollected


def record_written(lease_id: str, seq: int, record: UsageRecord | None) -> None:
    """The call's usage record is written (or ``record`` to retry later, if its write failed)."""
    with _container.lock:
        lease = _container.find(lease_id)
        if lease is None:
            return
        done = lease.done.get(seq)
        if record is not None:
            lease.unwritten[seq] = record
        elif done is not None:
            done.recorded = True
            lease.unwritten.pop(seq, None)


def maintain(lease_id: str) -> None:
    """Work due on a lease after an answer, never on the caller's path: retry unwritten
    records, hand usage back, renew, top up before the slice runs out, re-check the
    entitlement. Failures are logged; the next admission decides again."""
    with _container.lock:
        lease = _container.find(lease_id)
        if lease is None:
            return
        _write_unwritten(lease)
        try:
            _maintain(lease)
        except LeaseLost:
            # Reclaimed while this container was away: its calls are charged late from the
            # closing list, and the next call takes a new lease.
            _container.retire(lease)
        except (Shortfall, RateLimited, EntitlementChanged, LimitRefused, RateRefused):
            pass  # nothing to give back or take now; the next admission decides
        except Exception:
            logger.exception("lease maintenance failed; the next call retries it")
    if _container.closing:
        return_closing()


def _maintain(lease: Lease) -> None:
    now = clock.now()
    cfg = billing_settings()
    if lease.gone:
        lease.charge_late()
        if not lease.inflight and not lease.done:
            _container.closing.pop(lease.lease_id, None)
        return
    if lease.closing:
        if not lease.inflight:
            _return(lease, now)
        return
    if clock.now_precise() - lease.checked_at >= cfg.entitlement_check_seconds:
        check_entitlement(lease)
        if lease.closing:
            if not lease.inflight:
                _return(lease, now)
            return
    if lease.tight:
        give_back = Amounts(*(max(getattr(lease.left, d), 0) for d in ("tokens", "spend", "credits", "key")))
        through, _, _ = lease.flushable()
        if give_back.any_positive() or through > lease.flushed_seq:
            lease.write(now, give_back=give_back)
        return
    need = lease.last_need
    if need is not None and (
        not lease.left.covers(need[0], lease.limited(need[1])) or not lease.allowance_covers(need[2], now)
    ):
        # The slice or this minute's rate allowance would not cover another call like the last:
        # take more now, so that the next call needs no round trip.
        lease.top_up(need[0], need[1], need[2], now)
        return
    minute = ratelimit.minute_of(now)
    if (
        ratelimit.applies(lease.plan)
        and now - minute >= 45
        and lease.allowance is not None
        and lease.allowance.minute == minute
        and (lease.next_allowance is None or lease.next_allowance.minute != minute + 60)
    ):
        # A busy lease takes the next minute's allowance ahead, so the first call of that minute
        # needs no round trip either (the window item of a minute is written only by leases).
        tokens = need[2] if need is not None else 0
        lease.write(
            now, rate=ratelimit.size(lease.plan, ratelimit.Window(minute + 60), tokens), rate_ahead=True
        )
        return
    through, _, _ = lease.flushable()
    flush_due = through > lease.flushed_seq and (
        clock.now_precise() - lease.flushed_at >= cfg.lease_flush_seconds or len(lease.done) >= _FLUSH_CALLS
    )
    renew_due = lease.expires_at - now < cfg.lease_seconds / 2
    if flush_due or renew_due:
        lease.write(now)


def check_entitlement(lease: Lease) -> None:
    """Re-read the team's billing item (a read, no write): a changed entitlement retires the lease."""
    fresh = account.remember(account.load(lease.team_id))
    lease.checked_at = clock.now_precise()
    if fresh.rev != lease.rev:
        _container.retire(lease)
        return
    # Keep this lease's own view of the counters: other containers' changes are what is new.
    lease.state = fresh


def _write_unwritten(lease: Lease) -> None:
    for seq, record in list(lease.unwritten.items()):
        try:
            usage_records.record(record)
        except Exception:
            logger.warning("usage record write failed again; kept for the next try", extra={"seq": seq})
            continue
        lease.unwritten.pop(seq, None)
        done = lease.done.get(seq)
        if done is not None:
            done.recorded = True


def _return(lease: Lease, now: int) -> None:
    """Hand back everything: the recorded calls' usage and the unused slice; delete the lease."""
    if lease.inflight:
        return
    _write_unwritten(lease)
    through, _, _ = lease.flushable()
    if through < max(lease.done, default=lease.flushed_seq):
        return  # a record is still unwritten: the lease must stay until it is, or be reclaimed
    if not lease.on_table:
        _container.closing.pop(lease.lease_id, None)
        if _container.leases.get((lease.team_id, lease.scope)) is lease:
            del _container.leases[(lease.team_id, lease.scope)]
        return
    try:
        lease.write(now, give_back=lease.left, close=True)
    except LeaseLost:
        lease.charge_late()
    except (LimitRefused, RateRefused):
        logger.warning("returning a lease was refused", extra={"lease_id": lease.lease_id})
        return
    _container.closing.pop(lease.lease_id, None)
    if _container.leases.get((lease.team_id, lease.scope)) is lease:
        del _container.leases[(lease.team_id, lease.scope)]


def return_closing() -> None:
    """Hand back the retired leases whose calls have ended (after an answer, never before)."""
    with _container.lock:
        now = clock.now()
        for lease in list(_container.closing.values()):
            if lease.inflight:
                continue
            try:
                if lease.gone:
                    lease.charge_late()
                    if not lease.done:
                        _container.closing.pop(lease.lease_id, None)
                else:
                    _return(lease, now)
            except Exception:
                logger.exception("returning a retired lease failed; it will be reclaimed after its expiry")


def return_all() -> int:
    """Hand back every lease of this container whose calls have ended (tests; the local runner
    at shutdown). Returns how many were returned."""
    return _return_where(lambda lease: True)


def return_idle(idle_seconds: float) -> int:
    """Hand back the leases not used for ``idle_seconds`` (the local runner, which unlike a
    frozen Lambda container can run while idle)."""
    at = clock.now_precise()
    return _return_where(lambda lease: at - lease.last_used >= idle_seconds)


def _return_where(select: Any) -> int:
    returned = 0
    with _container.lock:
        now = clock.now()
        for lease in list(_container.all()):
            if lease.inflight or not select(lease):
                continue
            try:
                if lease.gone:
                    lease.charge_late()
                    if not lease.done:  # a call still to be recorded is charged when it is
                        _container.closing.pop(lease.lease_id, None)
                    continue
                _container.retire(lease)
                _return(lease, now)
                returned += 1
            except Exception:
                logger.exception("returning a lease failed; it will be reclaimed after its expiry")
    return returned
