"""Machine payments: an agent that meets a 402 tops up its team's credits in the same HTTP
exchange, with the Machine Payments Protocol's Stripe ``charge`` (wire format: :mod:`.mpp`).

The flow, and the items this module owns (the only reader and writer of each):

1. A 402 for ``credits_exhausted`` or ``quota_exhausted`` (or ``no_subscription`` when an admin
   opened the team to self-serve top-ups) of a team that opted in gets a challenge
   (:func:`on_payment_required`): one credit pack of the team's, at par, in US cents, bound by
   HMAC to the team, the key, the request body's digest and an expiry. The human-facing body,
   ``fix_url`` and ``Link`` stay as they are.
2. The agent retries with ``Payment-Authorization``; :func:`redeem` runs before the route:
   HMAC, expiry, team and key, digest, the offer still standing, then ONE conditional
   transaction claims the challenge (``MPPCHAL#<id>``) and counts the top-up against the day's
   ceilings (``TEAM#<team>`` / ``MPPDAY#<day>``): a credential settles at most once, however many
   times and however simultaneously it is sent.
3. A PaymentIntent is created and confirmed with the Shared Payment Token, idempotency key
   ``mpp_<challenge id>_<spt>``; only ``succeeded`` pays. Then ONE transaction marks the claim
   settled, adds the pack's credits (:func:`aigw.billing.account.credit_op`) and writes the
   audit record (``TEAM#<team>`` / ``MPPPAY#<ms>#<pi>``).
4. The route runs on those credits; a 2xx answer carries ``Payment-Receipt`` and
   ``Cache-Control: private``. The call's usage record names the PaymentIntent.

Per-team settings (``TEAM#<team>`` / ``MPP``): opt-in, self-serve, the pack, the daily ceilings.
Why it is safe: docs/billing.md ("Machine payments") and docs/decisions/0015-machine-payments.md.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field

from aigw import clock, request_context
from aigw.billing import account, mpp, notifications
from aigw.billing.config import billing_settings
from aigw.billing.plans import PLAN_ID_PATTERN, Plan, cached_plan, get_plan
from aigw.billing.rules import decide
from aigw.config import _int, _opt
from aigw.errors import GatewayError, InvalidRequest, PermissionDenied
from aigw.keys import ApiKey
from aigw.table import ConditionFailed, Item, gateway_table, serialize
from aigw.teams import team_pk

logger = Logger(service="aigw")

SETTINGS_SK = "MPP"
DAY_SK_PREFIX = "MPPDAY#"
PAYMENT_SK_PREFIX = "MPPPAY#"
CURRENCY = "usd"
MICRO_USD_PER_CENT = 10_000
# Stripe's smallest USD charge (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
STRIPE_MINIMUM_CENTS = 50
# A claim left "pending" this long belongs to a dead request (functions time out at 120 s).
STALE_CLAIM_SECONDS = 150
_SPT = re.compile(r"^spt_[A-Za-z0-9_]{1,200}$")  # the idempotency key stays under 255

# Which 402 codes may carry a challenge; no_subscription also needs the team's self_serve.
OFFERED_FOR = frozenset({"credits_exhausted", "quota_exhausted", "no_subscription"})

Unavailable = Literal[
    "not_configured",
    "no_credit_pack",
    "pack_too_small",
    "team_daily_limit_reached",
    "key_daily_limit_reached",
]


# ---- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MachinePaymentConfig:
    secret: str | None
    secret_id: str | None
    profile_id: str | None
    payment_method_types: tuple[str, ...]
    challenge_seconds: int
    stripe_version: str | None

    @classmethod
    def from_env(cls) -> MachinePaymentConfig:
        types = _opt("STRIPE_PAYMENT_METHOD_TYPES") or "card"
        return cls(
            secret=_opt("MPP_CHALLENGE_SECRET"),
            secret_id=_opt("MPP_CHALLENGE_SECRET_ID"),
            profile_id=_opt("STRIPE_PROFILE_ID"),
            payment_method_types=tuple(t.strip() for t in types.split(",") if t.strip()),
            challenge_seconds=_int("MPP_CHALLENGE_SECONDS", 300),
            # The API version pympp (the protocol's reference SDK) sends with SPT PaymentIntents.
            stripe_version=_opt("STRIPE_MPP_API_VERSION") or "2026-07-29.preview",
        )


@functools.cache
def config() -> MachinePaymentConfig:
    return MachinePaymentConfig.from_env()


def challenge_secret() -> str | None:
    """The challenge-binding key: env locally, Secrets Manager (generated at deploy) in AWS."""
    cfg = config()
    if cfg.secret:
        return cfg.secret
    if cfg.secret_id:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(cfg.secret_id, max_age=300))
    return None


def configured() -> bool:
    return bool(config().profile_id) and (bool(config().secret) or bool(config().secret_id))


def reset() -> None:
    config.cache_clear()


def _realm() -> str:
    base = billing_settings().public_base_url or request_context.base_url() or ""
    return urlsplit(base).netloc or "aigw"


# ---- errors -------------------------------------------------------------------------------------

_TITLES = {
    "malformed-credential": "Malformed Credential",
    "invalid-challenge": "Invalid Challenge",
    "payment-expired": "Payment Expired",
    "verification-failed": "Verification Failed",
    "payment-action-required": "Payment Action Required",
    "method-unsupported": "Method Unsupported",
}


class PaymentProblem(GatewayError):
    """A refused payment credential, as the draft names it: ``type`` is
    ``https://paymentauth.org/problems/<slug>``, ``code`` the slug in snake case."""

    status = 402
    error_type = "billing_error"

    def __init__(self, slug: str, message: str, *, status: int = 402, code: str | None = None) -> None:
        super().__init__(message, code=code or slug.replace("-", "_"))
        self.status = status
        self.title = _TITLES.get(slug, "Payment Required")
        self.problem_type = mpp.PROBLEM_BASE + slug


class PaymentOutcomeUnknown(GatewayError):
    status = 502
    error_type = "upstream_error"
    title = "Payment outcome unknown"
    default_code = "payment_outcome_unknown"


# ---- the team's settings -------------------------------------------------------------------------

Limit = Annotated[int, Field(ge=0, le=1000)]


class Policy(BaseModel):
    """Who may buy what, how often. Off until an admin opts the team in."""

    model_config = ConfigDict(frozen=True)

    team_id: str
    enabled: bool = False
    self_serve: bool = False
    pack_id: str | None = None
    team_daily_limit: int = 10
    key_daily_limit: int = 3
    updated_at: int | None = None
    updated_by: str | None = None


class PolicyUpdate(BaseModel):
    """What an admin (any change) or a team key (narrowing only) sends; absent = unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    self_serve: bool | None = None
    pack_id: Annotated[str, Field(pattern=PLAN_ID_PATTERN)] | None = None
    team_daily_limit: Limit | None = None
    key_daily_limit: Limit | None = None


def get_policy(team_id: str) -> Policy:
    item = gateway_table().get(team_pk(team_id), SETTINGS_SK, consistent=True)
    fields = {k: v for k, v in (item or {}).items() if k in Policy.model_fields and k != "team_id"}
    return Policy.model_validate({**fields, "team_id": team_id})


def _widens(before: Policy, after: Policy) -> str | None:
    if after.enabled and not before.enabled:
        return "enabled"
    if after.self_serve and not before.self_serve:
        return "self_serve"
    if after.pack_id != before.pack_id:
        return "pack_id"
    if after.team_daily_limit > before.team_daily_limit:
        return "team_daily_limit"
    if after.key_daily_limit > before.key_daily_limit:
        return "key_daily_limit"
    return None


def put_policy(caller: ApiKey, team_id: str, update: PolicyUpdate) -> Policy:
    """Change a team's settings. Admin keys may change anything; a team's own keys may only
    narrow them (switch off, lower a ceiling): a key an agent holds never widens its spending."""
    before = get_policy(team_id)
    changes = update.model_dump(exclude_none=True)
    after = before.model_copy(update={**changes, "updated_at": clock.now(), "updated_by": caller.key_id})
    if not caller.is_admin:
        if caller.team_id != team_id:
            raise PermissionDenied("Team keys can only change their own team", code="other_team")
        widened = _widens(before, after)
        if widened is not None:
            raise PermissionDenied(
                f"Only an admin can widen machine payments ('{widened}'); a team key may switch them "
                "off or lower a ceiling",
                code="admin_required",
                param=widened,
            )
    if after.pack_id is not None and "pack_id" in changes:
        _check_pack(get_plan(after.pack_id))
    gateway_table().put(
        {
            "pk": team_pk(team_id),
            "sk": SETTINGS_SK,
            "type": "mpp_settings",
            **after.model_dump(exclude_none=True),
        }
    )
    return after


# ---- the pack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pack:
    """The credit pack an agent may buy: its credits, sold at par, in US cents."""

    plan_id: str
    name: str
    credits_micro_usd: int

    @property
    def amount_cents(self) -> int:
        return math.ceil(self.credits_micro_usd / MICRO_USD_PER_CENT)


def _check_pack(plan: Plan) -> Pack:
    if plan.kind != "credits":
        raise InvalidRequest(f"plan '{plan.plan_id}' is not a credit pack (kind credits)", param="pack_id")
    pack = Pack(plan.plan_id, plan.name or plan.plan_id, plan.credits_micro_usd)
    if pack.amount_cents < STRIPE_MINIMUM_CENTS:
        raise InvalidRequest(
            f"credit pack '{plan.plan_id}' grants {plan.credits_micro_usd} micro-USD; Stripe's minimum "
            f"charge is {STRIPE_MINIMUM_CENTS} cents (0.50 USD)",
            param="pack_id",
        )
    return pack


def pack_for(policy: Policy, credit_plan_id: str | None = None) -> Pack | None:
    """The pack set for the team, else the team's last credit pack, else ``CREDITS_PLAN``."""
    plan_id = policy.pack_id or credit_plan_id or billing_settings().credits_plan
    plan = cached_plan(plan_id) if plan_id else None
    if plan is None:
        return None
    try:
        return _check_pack(plan)
    except InvalidRequest:
        return None


# ---- daily ceilings -----------------------------------------------------------------------------


def _day(now: int) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d")


def _next_midnight(now: int) -> int:
    return (now // 86_400 + 1) * 86_400


def _key_attr(key_id: str) -> str:
    return "k_" + key_id


@dataclass(frozen=True)
class Today:
    team: int
    key: int


def today(team_id: str, key_id: str | None, now: int | None = None) -> Today:
    item = (
        gateway_table().get(team_pk(team_id), DAY_SK_PREFIX + _day(now or clock.now()), consistent=True) or {}
    )
    return Today(int(item.get("n", 0)), int(item.get(_key_attr(key_id), 0)) if key_id else 0)


# ---- the offer in a 402 ------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    challenge: mpp.Challenge | None
    pack: Pack | None
    unavailable: Unavailable | None = None
    detail: str = ""
    resets_at: int | None = None

    def body(self) -> dict[str, Any]:
        if self.challenge is None:
            out: dict[str, Any] = {"available": False, "code": self.unavailable, "detail": self.detail}
            if self.resets_at is not None:
                out["resets_at"] = clock.iso(self.resets_at)
            return out
        assert self.pack is not None
        return {
            "available": True,
            "challenge_id": self.challenge.id,
            "method": mpp.METHOD,
            "intent": mpp.INTENT,
            "amount": str(self.pack.amount_cents),
            "currency": CURRENCY,
            "credits_micro_usd": self.pack.credits_micro_usd,
            "pack_id": self.pack.plan_id,
            "expires": self.challenge.expires,
            "header": mpp.CREDENTIAL_HEADER,
        }

    def headers(self) -> dict[str, str]:
        out = {"Cache-Control": "no-store"}
        if self.challenge is not None:
            out["WWW-Authenticate"] = self.challenge.www_authenticate()
        return out


def _body_bytes(event: Mapping[str, Any]) -> bytes | None:
    body = event.get("body")
    if body is None or body == "":
        return None
    return str(body).encode("utf-8")


def _issue(key: ApiKey, event: Mapping[str, Any], pack: Pack, secret: str) -> mpp.Challenge:
    cfg = config()
    assert cfg.profile_id is not None
    now = clock.now()
    body = _body_bytes(event)
    request = {
        "amount": str(pack.amount_cents),
        "currency": CURRENCY,
        "description": f"{pack.name}: {pack.credits_micro_usd / 1_000_000:.2f} USD of aigw credits for "
        f"team {key.team_id}",
        "methodDetails": {"networkId": cfg.profile_id, "paymentMethodTypes": list(cfg.payment_method_types)},
    }
    opaque = {
        "team": key.team_id,
        "key": key.key_id,
        "pack": pack.plan_id,
        "nonce": secrets.token_urlsafe(12),
    }
    return mpp.issue(
        secret,
        realm=_realm(),
        request=request,
        expires=clock.iso(now + cfg.challenge_seconds),
        digest=mpp.content_digest(body) if body is not None else None,
        opaque=opaque,
    )


def offer(
    key: ApiKey, event: Mapping[str, Any], *, code: str | None, needs_micro_usd: int | None = None
) -> Offer | None:
    """What a 402 for ``key`` offers an agent: a challenge, a reason why not, or nothing (the
    team did not opt in, or the refusal is not one a top-up fixes)."""
    if code is not None and code not in OFFERED_FOR:
        return None
    policy = get_policy(key.team_id)
    if not policy.enabled or (code == "no_subscription" and not policy.self_serve):
        return None
    secret = challenge_secret() if configured() else None
    if secret is None:
        return Offer(
            None, None, "not_configured", "This gateway has no Stripe profile or challenge key set up."
        )
    state = account.cached_state(key.team_id)
    pack = pack_for(policy, state.credit_plan_id)
    if pack is None:
        return Offer(
            None, None, "no_credit_pack", "No credit pack of at least 0.50 USD is set for this team."
        )
    if needs_micro_usd is not None and needs_micro_usd > pack.credits_micro_usd:
        return Offer(
            None,
            pack,
            "pack_too_small",
            f"This call needs {needs_micro_usd} micro-USD more credits than one '{pack.plan_id}' pack "
            f"({pack.credits_micro_usd}) adds; lower max_tokens or buy credits through fix_url.",
        )
    now = clock.now()
    used = today(key.team_id, key.key_id, now)
    if used.team >= policy.team_daily_limit:
        return Offer(
            None,
            pack,
            "team_daily_limit_reached",
            f"The team's {policy.team_daily_limit} machine top-ups for today are used.",
            _next_midnight(now),
        )
    if used.key >= policy.key_daily_limit:
        return Offer(
            None,
            pack,
            "key_daily_limit_reached",
            f"This key's {policy.key_daily_limit} machine top-ups for today are used.",
            _next_midnight(now),
        )
    return Offer(_issue(key, event, pack, secret), pack)


def on_payment_required(err: GatewayError, event: Mapping[str, Any], key: ApiKey | None) -> None:
    """The 402 hook (:mod:`aigw.web`): add the challenge, or why there is none, to a billing 402.
    Everything already in the 402 stays; a failure here leaves it as it was."""
    if key is None or err.status != 402 or "machine_payment" in err.extra or err.code not in OFFERED_FOR:
        return
    try:
        found = offer(key, event, code=err.code, needs_micro_usd=getattr(err, "needs_micro_usd", None))
    except Exception:
        logger.exception("machine payment offer failed; the 402 goes out without a challenge")
        return
    _attach(err, found)


def _attach(err: GatewayError, found: Offer | None) -> None:
    if found is None:
        return
    err.headers.update(found.headers())
    err.extra["machine_payment"] = found.body()
    if found.challenge is not None:
        err.extra["challengeId"] = found.challenge.id


# ---- redeeming a credential ------------------------------------------------------------------------


@dataclass(frozen=True)
class Paid:
    payment_intent: str
    credits_micro_usd: int
    amount_cents: int
    receipt: str

    def headers(self) -> dict[str, str]:
        return {mpp.RECEIPT_HEADER: self.receipt, "Cache-Control": "private"}


def _credential_value(event: Mapping[str, Any]) -> str | None:
    multi = event.get("multiValueHeaders") or {}
    values = [v for k, vs in multi.items() if k.lower() == "payment-authorization" for v in (vs or [])]
    if len(values) > 1:
        raise InvalidRequest(
            "Send one Payment-Authorization header per request", code="multiple_credentials", param="header"
        )
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "payment-authorization":
            return str(value)
    return values[0] if values else None


def _refused(
    slug: str, message: str, key: ApiKey, event: Mapping[str, Any], *, status: int = 402
) -> PaymentProblem:
    """A refused credential; a 402 carries a fresh challenge when the team can still be offered one."""
    problem = PaymentProblem(slug, message, status=status)
    if status == 402:
        try:
            _attach(problem, offer(key, event, code=None))
        except Exception:
            logger.exception("no fresh challenge for a refused credential")
        if "challengeId" not in problem.extra:
            problem.headers.setdefault("Cache-Control", "no-store")
    return problem


def _expiry(value: str | None) -> int | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp())


def _verify(cred: mpp.Credential, key: ApiKey, event: Mapping[str, Any], secret: str) -> tuple[Pack, str]:
    """Everything that can be checked without touching money: HMAC, expiry, who, body, offer."""
    ch = cred.challenge
    if ch.method != mpp.METHOD or ch.intent != mpp.INTENT:
        raise PaymentProblem(
            "method-unsupported",
            f"This gateway takes method 'stripe', intent 'charge', not '{ch.method}'/'{ch.intent}'",
            status=400,
        )
    if not mpp.is_bound(ch, secret) or ch.realm != _realm():
        raise _refused(
            "invalid-challenge",
            "This challenge was not issued by this gateway, or one of its parameters was changed "
            "(its id no longer matches them).",
            key,
            event,
        )
    expires = _expiry(ch.expires)
    if expires is None:
        raise _refused("invalid-challenge", "The challenge has no valid 'expires'.", key, event)
    if expires <= clock.now():
        raise _refused(
            "payment-expired", f"The challenge expired at {ch.expires}; pay the fresh one.", key, event
        )
    opaque = ch.opaque_json()
    if opaque.get("team") != key.team_id:
        raise _refused("invalid-challenge", "This challenge was issued to another team.", key, event)
    if opaque.get("key") != key.key_id:
        raise _refused("invalid-challenge", "This challenge was issued to another API key.", key, event)
    body = _body_bytes(event)
    if (ch.digest or body is not None) and ch.digest != mpp.content_digest(body or b""):
        raise _refused(
            "invalid-challenge",
            "The request body differs from the one the challenge was issued for (digest mismatch).",
            key,
            event,
        )
    policy = get_policy(key.team_id)
    if not policy.enabled:
        raise _refused("invalid-challenge", "Machine payments are switched off for this team.", key, event)
    pack = pack_for(policy, account.cached_state(key.team_id).credit_plan_id)
    request = ch.request_json()
    if (
        pack is None
        or opaque.get("pack") != pack.plan_id
        or request.get("amount") != str(pack.amount_cents)
        or request.get("currency") != CURRENCY
    ):
        raise _refused(
            "invalid-challenge", "The team's credit pack changed since this challenge was issued.", key, event
        )
    spt = cred.payload.get("spt")
    if not isinstance(spt, str) or not _SPT.match(spt):
        raise _refused(
            "verification-failed", "payload.spt must be a Stripe shared payment token (spt_...).", key, event
        )
    return pack, spt


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _claim_pk(challenge_id: str) -> str:
    return f"MPPCHAL#{_sha(challenge_id)[:40]}"


@dataclass(frozen=True)
class _Claim:
    pk: str
    token: str
    day: str


def _claim(cred: mpp.Credential, key: ApiKey, event: Mapping[str, Any], spt: str, expires: int) -> _Claim:
    """Claim the challenge and count the top-up against today's ceilings, in one transaction.

    Exactly one request can hold a challenge's claim; a second one finds it taken and is refused
    without reaching Stripe. The only way back in is for the same token after an outcome that
    was never known (Stripe unreachable, the holder died): its PaymentIntent has the same
    idempotency key, so Stripe answers the first attempt's result instead of charging again."""
    policy = get_policy(key.team_id)
    now = clock.now()
    pk, token, day = _claim_pk(cred.challenge.id), secrets.token_hex(16), _day(now)
    claim = {
        "pk": pk,
        "sk": "META",
        "type": "mpp_claim",
        "status": "pending",
        "token": token,
        "spt_sha256": _sha(spt),
        "team_id": key.team_id,
        "key_id": key.key_id,
        "day": day,
        "claimed_at": now,
        "ttl": max(expires, now) + 2 * 86_400,
    }
    counter = {
        "Key": serialize({"pk": team_pk(key.team_id), "sk": DAY_SK_PREFIX + day}),
        "UpdateExpression": "ADD n :one, #k :one SET #ttl = :ttl",
        "ConditionExpression": (
            "(attribute_not_exists(n) OR n < :tmax) AND (attribute_not_exists(#k) OR #k < :kmax)"
        ),
        "ExpressionAttributeNames": {"#k": _key_attr(key.key_id), "#ttl": "ttl"},
        "ExpressionAttributeValues": serialize(
            {
                ":one": 1,
                ":tmax": policy.team_daily_limit,
                ":kmax": policy.key_daily_limit,
                ":ttl": now + 3 * 86_400,
            }
        ),
    }
    try:
        gateway_table().transact(
            [
                {"Put": {"Item": serialize(claim), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Update": counter},
            ]
        )
        return _Claim(pk, token, day)
    except ConditionFailed as exc:
        if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
            return _take_over(pk, spt, key, event, now)
        # Over a daily ceiling: the same answer as a 402 that offers no challenge, and why.
        which = "team" if today(key.team_id, None, now).team >= policy.team_daily_limit else "key"
        limit = policy.team_daily_limit if which == "team" else policy.key_daily_limit
        code: Unavailable = "team_daily_limit_reached" if which == "team" else "key_daily_limit_reached"
        problem = PaymentProblem(
            "payment-required",
            f"The {which}'s {limit} machine top-ups for today are used; nothing was charged.",
            code=code,
        )
        _attach(problem, Offer(None, None, code, problem.message, _next_midnight(now)))
        raise problem from None


def _take_over(pk: str, spt: str, key: ApiKey, event: Mapping[str, Any], now: int) -> _Claim:
    held = gateway_table().get(pk, "META", consistent=True) or {}
    status = held.get("status")
    same = held.get("spt_sha256") == _sha(spt)
    if status == "failed":
        raise _refused("invalid-challenge", "This challenge was used by a payment that failed.", key, event)
    stale = status == "pending" and int(held.get("claimed_at", now)) < now - STALE_CLAIM_SECONDS
    if same and (status == "unknown" or stale):
        token = secrets.token_hex(16)
        with contextlib.suppress(ConditionFailed):
            gateway_table().update(
                pk,
                "META",
                expression="SET #s = :pending, #t = :new, claimed_at = :now",
                names={"#s": "status", "#t": "token"},
                values={":pending": "pending", ":new": token, ":old": held.get("token"), ":now": now},
                condition="#t = :old",
            )
            return _Claim(pk, token, str(held.get("day")))
    if status == "settled":
        message = "This credential has already paid; its credits are on the team. Nothing more was charged."
    else:
        message = "This challenge is being paid by another request; a credential settles once."
    raise PaymentProblem("invalid-challenge", message, status=403)


def _release(claim: _Claim, key: ApiKey, status: Literal["failed", "unknown"]) -> None:
    """A payment that did not happen: the claim says so and, once failed, the day's count goes back."""
    ops: list[dict[str, Any]] = [
        {
            "Update": {
                "Key": serialize({"pk": claim.pk, "sk": "META"}),
                "UpdateExpression": "SET #s = :status",
                "ConditionExpression": "#t = :token AND #s = :pending",
                "ExpressionAttributeNames": {"#s": "status", "#t": "token"},
                "ExpressionAttributeValues": serialize(
                    {":status": status, ":token": claim.token, ":pending": "pending"}
                ),
            }
        }
    ]
    if status == "failed":
        ops.append(
            {
                "Update": {
                    "Key": serialize({"pk": team_pk(key.team_id), "sk": DAY_SK_PREFIX + claim.day}),
                    "UpdateExpression": "ADD n :minus, #k :minus",
                    "ExpressionAttributeNames": {"#k": _key_attr(key.key_id)},
                    "ExpressionAttributeValues": serialize({":minus": -1}),
                }
            }
        )
    try:
        gateway_table().transact(ops)
    except (ConditionFailed, GatewayError):
        logger.exception("could not release a machine payment claim", extra={"claim": claim.pk})


def _stripe_payment(cred: mpp.Credential, key: ApiKey, pack: Pack, spt: str) -> Any:
    from aigw.billing.stripe_links import stripe_client

    client = stripe_client()
    request = cred.challenge.request_json()
    details = request.get("methodDetails") or {}
    params: dict[str, Any] = {
        "amount": pack.amount_cents,
        "currency": CURRENCY,
        "confirm": True,
        "shared_payment_granted_token": spt,
        "payment_method_types": list(details.get("paymentMethodTypes") or config().payment_method_types),
        "description": str(request.get("description") or pack.name),
        "metadata": {
            "challenge_id": cred.challenge.id,
            "team_id": key.team_id,
            "key_id": key.key_id,
            "aigw_plan": pack.plan_id,
            "aigw_credits_micro_usd": str(pack.credits_micro_usd),
            "aigw_machine_payment": "true",
        },
    }
    options: dict[str, Any] = {"idempotency_key": f"mpp_{cred.challenge.id}_{spt}"}
    if config().stripe_version:
        options["stripe_version"] = config().stripe_version
    return client.v1.payment_intents.create(params, options=options)


def _cancel(payment_intent: str) -> None:
    from aigw.billing.stripe_links import stripe_client

    try:
        stripe_client().v1.payment_intents.cancel(payment_intent)
    except Exception:
        logger.exception("could not cancel a PaymentIntent that needs action", extra={"pi": payment_intent})


def _charge(
    cred: mpp.Credential, key: ApiKey, event: Mapping[str, Any], pack: Pack, spt: str, claim: _Claim
) -> Any:
    import stripe

    try:
        intent = _stripe_payment(cred, key, pack, spt)
    except (stripe.CardError, stripe.InvalidRequestError, stripe.IdempotencyError) as exc:
        _release(claim, key, "failed")
        reason = exc.user_message or str(exc)
        raise _refused("verification-failed", f"Stripe refused the payment: {reason}", key, event) from exc
    except stripe.StripeError as exc:
        # Unreachable, 5xx, rate limited, misconfigured: the outcome is not known. The claim stays
        # with this credential; sending it again replays the same PaymentIntent, never a second one.
        _release(claim, key, "unknown")
        raise PaymentOutcomeUnknown(
            "Stripe could not be reached to confirm the payment; send the same request with the same "
            "credential again (it is never charged twice).",
            headers={"Retry-After": "2"},
        ) from exc
    status = str(intent.status)
    if status == "succeeded":
        return intent
    if status == "requires_action":
        # 3-D Secure and the like need a person: cancel, so no money moves without its credits.
        _cancel(str(intent.id))
        _release(claim, key, "failed")
        raise _refused(
            "payment-action-required",
            "The payment needs the card holder's action (3-D Secure); nothing was charged. Pay with a "
            "payment method that needs none, or through fix_url.",
            key,
            event,
        )
    if status in ("requires_payment_method", "requires_confirmation", "requires_capture"):
        _cancel(str(intent.id))
    _release(claim, key, "failed")
    raise _refused("verification-failed", f"The PaymentIntent ended '{status}', not 'succeeded'.", key, event)


def _settle(
    cred: mpp.Credential, key: ApiKey, event: Mapping[str, Any], pack: Pack, claim: _Claim, intent: Any
) -> Item:
    """Claim settled, credits added, audit record written: one transaction, so all or none."""
    now_ms = clock.now_ms()
    pi = str(intent.id)
    ctx = event.get("requestContext") or {}
    record: Item = {
        "pk": team_pk(key.team_id),
        "sk": f"{PAYMENT_SK_PREFIX}{now_ms:014d}#{pi}",
        "type": "machine_payment",
        "team_id": key.team_id,
        "key_id": key.key_id,
        "key_prefix": key.prefix,
        "key_name": key.name,
        "payment_intent": pi,
        "challenge_id": cred.challenge.id,
        "amount_cents": pack.amount_cents,
        "currency": CURRENCY,
        "credits_micro_usd": pack.credits_micro_usd,
        "pack_id": pack.plan_id,
        "request_id": str(ctx.get("requestId") or ""),
        "route": f"{event.get('httpMethod', '')} {event.get('path', '')}".strip(),
        "payer": cred.source,
        "created_at_ms": now_ms,
        "created_at": clock.iso(now_ms / 1000),
    }
    account.ensure_item(key.team_id)
    gateway_table().transact(
        [
            {
                "Update": {
                    "Key": serialize({"pk": claim.pk, "sk": "META"}),
                    "UpdateExpression": "SET #s = :settled, payment_intent = :pi",
                    "ConditionExpression": "#t = :token AND #s = :pending",
                    "ExpressionAttributeNames": {"#s": "status", "#t": "token"},
                    "ExpressionAttributeValues": serialize(
                        {":settled": "settled", ":pi": pi, ":token": claim.token, ":pending": "pending"}
                    ),
                }
            },
            account.credit_op(key.team_id, pack.credits_micro_usd, plan_id=pack.plan_id),
            {"Put": {"Item": serialize(record), "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
    )
    return record


def redeem(event: Mapping[str, Any], key: ApiKey) -> Paid | None:
    """Pay for this request with its ``Payment-Authorization`` credential, before the route runs.

    None when the request carries no credential. Refusals are :class:`PaymentProblem` (402 with
    a fresh challenge where one can be offered; 403 for a credential already used) and nothing is
    charged by any of them."""
    raw = _credential_value(event)
    if raw is None:
        return None
    secret = challenge_secret() if configured() else None
    if secret is None:
        raise PaymentProblem("method-unsupported", "This gateway does not take machine payments.", status=400)
    try:
        cred = mpp.parse_credential(raw)
    except mpp.MalformedCredential as exc:
        raise _refused(
            "malformed-credential", f"The Payment-Authorization credential is malformed: {exc}.", key, event
        ) from None
    pack, spt = _verify(cred, key, event, secret)
    from aigw.billing.stripe_links import stripe_client

    stripe_client()  # Stripe must be configured before anything is claimed (503 otherwise)
    expires = _expiry(cred.challenge.expires) or clock.now()
    before = account.load(key.team_id)
    claim = _claim(cred, key, event, spt, expires)
    intent = _charge(cred, key, event, pack, spt, claim)
    try:
        record = _settle(cred, key, event, pack, claim, intent)
    except ConditionFailed:
        # Another request took this claim over (ours looked dead) and settled the same PaymentIntent.
        raise PaymentProblem(
            "invalid-challenge", "This credential has already paid; nothing more was charged.", status=403
        ) from None
    account.forget(key.team_id)
    request_context.set_machine_payment(record["payment_intent"])
    _announce(key, before, record)
    return Paid(
        payment_intent=record["payment_intent"],
        credits_micro_usd=pack.credits_micro_usd,
        amount_cents=pack.amount_cents,
        receipt=mpp.receipt(record["payment_intent"], clock.iso(clock.now())),
    )


def _announce(key: ApiKey, before: Any, record: Item) -> None:
    """The notifications any credit top-up sends (as a paid credit Checkout does)."""
    notifications.emit(
        "Credits Purchased",
        key.team_id,
        micro_usd=record["credits_micro_usd"],
        payment_intent=record["payment_intent"],
        machine_payment=True,
        key_id=key.key_id,
    )
    with contextlib.suppress(Exception):
        now = clock.now()
        after = account.load(key.team_id)
        if not decide(before, now).allowed and decide(after, now).allowed:
            notifications.emit("Access Restored", key.team_id, payment_intent=record["payment_intent"])


# ---- the audit list and reports ----------------------------------------------------------------------


class MachinePayment(BaseModel):
    """One machine payment: who (key), when, how much, which PaymentIntent, for which call."""

    model_config = ConfigDict(frozen=True)

    payment_intent: str
    created_at: str
    team_id: str
    key_id: str
    key_prefix: str | None = None
    key_name: str | None = None
    amount_cents: int
    currency: str
    credits_micro_usd: int
    pack_id: str
    challenge_id: str
    request_id: str
    route: str | None = None
    payer: str | None = None

    @classmethod
    def from_item(cls, item: Item) -> MachinePayment:
        return cls.model_validate({k: item[k] for k in cls.model_fields if k in item})


def list_payments(
    team_id: str, *, since_ms: int = 0, until_ms: int | None = None, limit: int | None = 100
) -> list[MachinePayment]:
    """Newest first."""
    high = f"{PAYMENT_SK_PREFIX}{(until_ms if until_ms is not None else 10**14 - 1):014d}~"
    items = gateway_table().query(
        "pk = :p AND sk BETWEEN :lo AND :hi",
        {":p": team_pk(team_id), ":lo": f"{PAYMENT_SK_PREFIX}{since_ms:014d}", ":hi": high},
        forward=False,
        limit=limit,
        consistent=True,
    )
    return [MachinePayment.from_item(i) for i in items]


def summary(team_id: str, start_day: str, end_day: str) -> dict[str, Any]:
    """Machine payments of ``team_id`` between two UTC days (inclusive), for usage reports."""
    start = int(datetime.fromisoformat(start_day).replace(tzinfo=UTC).timestamp()) * 1000
    end = (int(datetime.fromisoformat(end_day).replace(tzinfo=UTC).timestamp()) + 86_400) * 1000 - 1
    payments = list_payments(team_id, since_ms=start, until_ms=end, limit=None)
    return {
        "count": len(payments),
        "amount_cents": sum(p.amount_cents for p in payments),
        "credits_micro_usd": sum(p.credits_micro_usd for p in payments),
        "payments": [p.model_dump(exclude_none=True) for p in payments],
    }


def view(team_id: str, *, payments: int = 20) -> dict[str, Any]:
    """Settings, the pack on offer, today's counts and the latest payments: the admin and
    portal view of a team's machine payments."""
    policy = get_policy(team_id)
    state = account.cached_state(team_id)
    pack = pack_for(policy, state.credit_plan_id)
    used = today(team_id, None)
    return {
        **policy.model_dump(),
        "configured": configured(),
        "pack": None
        if pack is None
        else {
            "plan_id": pack.plan_id,
            "name": pack.name,
            "amount": str(pack.amount_cents),
            "currency": CURRENCY,
            "credits_micro_usd": pack.credits_micro_usd,
        },
        "today": {"day": _day(clock.now()), "team_top_ups": used.team},
        "payments": [p.model_dump(exclude_none=True) for p in list_payments(team_id, limit=payments)],
    }
