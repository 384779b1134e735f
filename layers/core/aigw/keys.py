"""API keys: minting, hashing, lookup with a short warm-container cache, revocation.

A key is ``sk-aigw-<43 url-safe chars>`` (256 random bits). Only its SHA-256 is stored:
with that much entropy a slow hash buys nothing, and the hot path stays one GetItem.
A warm container caches lookups for ``KEY_CACHE_SECONDS`` (default 5), which is the bound
on how long a revoked or expired key can still be used on another container.
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aigw import clock
from aigw.config import settings
from aigw.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound, PermissionDenied
from aigw.table import ConditionFailed, Item, gateway_table, serialize
from aigw.teams import team_pk
from aigw.warm_cache import WarmCache

KEY_PREFIX = "sk-aigw-"
_VISIBLE_CHARS = 12
Role = Literal["admin", "member"]
BudgetPeriod = Literal["day", "month"]


class KeyBudget(BaseModel):
    """A key's own spend cap per UTC day or calendar month, in micro-USD, on top of its team's
    terms (enforced by admission, see :mod:`aigw.billing.key_budgets`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit_micro_usd: int = Field(ge=0, le=10**15)
    period: BudgetPeriod

    def within(self, other: KeyBudget) -> bool:
        """Never more than ``other`` allows: no larger, and no longer a period for the same cap."""
        if self.period == other.period:
            return self.limit_micro_usd <= other.limit_micro_usd
        if self.period == "day":  # a daily cap within a monthly one: 31 such days fit the month
            return self.limit_micro_usd * 31 <= other.limit_micro_usd
        return False  # a monthly cap is never within a daily one


class ApiKey(BaseModel):
    """What the gateway knows of a key; never holds the secret itself."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    team_id: str
    role: Role
    name: str
    prefix: str
    allowed_models: tuple[str, ...] | None = None
    expires_at: int | None = None
    revoked_at: int | None = None
    created_at: int
    budget: KeyBudget | None = None

    @classmethod
    def from_item(cls, item: Item) -> ApiKey:
        allowed = item.get("allowed_models")
        budget = None
        if item.get("budget_period") is not None:
            budget = KeyBudget(limit_micro_usd=int(item["budget_micro_usd"]), period=item["budget_period"])
        return cls(
            budget=budget,
            key_id=item["key_id"],
            team_id=item["team_id"],
            role=item["role"],
            name=item.get("name", ""),
            prefix=item["prefix"],
            allowed_models=tuple(allowed) if allowed is not None else None,
            expires_at=int(item["expires_at"]) if item.get("expires_at") is not None else None,
            revoked_at=int(item["revoked_at"]) if item.get("revoked_at") is not None else None,
            created_at=int(item["created_at"]),
        )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def status(self, at: int | None = None) -> Literal["active", "revoked", "expired"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (at if at is not None else clock.now()):
            return "expired"
        return "active"

    def allows_model(self, model_id: str) -> bool:
        if self.allowed_models is None:
            return True
        return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.allowed_models)


class IssuedKey(BaseModel):
    """A freshly minted key: the only moment the secret exists outside the caller's hands."""

    model_config = ConfigDict(frozen=True)

    key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _key_pk(key_hash: str) -> str:
    return f"KEY#{key_hash}"


def _pointer_sk(key_id: str) -> str:
    return f"KEY#{key_id}"


def create_key(
    team_id: str,
    *,
    name: str = "",
    role: Role = "member",
    allowed_models: list[str] | None = None,
    expires_at: int | None = None,
    budget: KeyBudget | None = None,
) -> IssuedKey:
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("expires_at must be in the future", param="expires_at")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_hash = hash_secret(secret)
    key = ApiKey(
        key_id="key_" + secrets.token_hex(8),
        team_id=team_id,
        role=role,
        name=name,
        prefix=secret[:_VISIBLE_CHARS],
        allowed_models=tuple(allowed_models) if allowed_models is not None else None,
        expires_at=expires_at,
        created_at=now,
        budget=budget,
    )
    attrs: dict[str, Any] = key.model_dump(exclude_none=True, exclude={"budget"})
    if key.allowed_models is not None:
        attrs["allowed_models"] = list(key.allowed_models)
    attrs.update(_budget_attributes(budget))
    operations: list[dict[str, Any]] = [
        {
            "ConditionCheck": {
                "Key": {"pk": {"S": team_pk(team_id)}, "sk": {"S": "META"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
        {
            "Put": {
                "Item": serialize({"pk": _key_pk(key_hash), "sk": "META", "type": "key", **attrs}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Put": {
                "Item": serialize(
                    {
                        "pk": team_pk(team_id),
                        "sk": _pointer_sk(key.key_id),
                        "type": "key_pointer",
                        "key_hash": key_hash,
                        **attrs,
                    }
                ),
            }
        },
    ]
    try:
        gateway_table().transact(operations)
    except ConditionFailed as exc:
        if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
            raise NotFound(f"team '{team_id}' does not exist", code="team_not_found") from exc
        raise Conflict("key collision; try again", code="key_collision") from exc
    return IssuedKey(key=key, secret=secret)


def list_keys(team_id: str) -> list[ApiKey]:
    items = gateway_table().query(
        "pk = :p AND begins_with(sk, :k)", {":p": team_pk(team_id), ":k": "KEY#"}, consistent=True
    )
    return sorted((ApiKey.from_item(i) for i in items), key=lambda k: k.created_at)


def find_key(team_id: str, key_id: str) -> ApiKey | None:
    """A key of ``team_id`` by its id, as stored now (consistent read, no cache)."""
    pointer = gateway_table().get(team_pk(team_id), _pointer_sk(key_id), consistent=True)
    return ApiKey.from_item(pointer) if pointer else None


def revoke_key(team_id: str, key_id: str) -> ApiKey:
    table = gateway_table()
    pointer = table.get(team_pk(team_id), _pointer_sk(key_id), consistent=True)
    if pointer is None:
        raise NotFound(f"key '{key_id}' does not exist in team '{team_id}'", code="key_not_found")
    if pointer.get("revoked_at") is not None:
        return ApiKey.from_item(pointer)
    now = clock.now()
    update = {
        "UpdateExpression": "SET revoked_at = :now",
        "ExpressionAttributeValues": {":now": {"N": str(now)}},
    }
    table.transact(
        [
            {"Update": {"Key": {"pk": {"S": _key_pk(pointer["key_hash"])}, "sk": {"S": "META"}}, **update}},
            {"Update": {"Key": {"pk": {"S": team_pk(team_id)}, "sk": {"S": _pointer_sk(key_id)}}, **update}},
        ]
    )
    _cache.forget(pointer["key_hash"])
    return ApiKey.from_item({**pointer, "revoked_at": now})


def _budget_attributes(budget: KeyBudget | None) -> dict[str, Any]:
    if budget is None:
        return {}
    return {"budget_micro_usd": budget.limit_micro_usd, "budget_period": budget.period}


def set_budget(team_id: str, key_id: str, budget: KeyBudget | None) -> ApiKey:
    """Give a key its own spend cap (``None`` removes it). Containers that cached the key see
    the change within ``KEY_CACHE_SECONDS``, as they see a revocation."""
    table = gateway_table()
    pointer = table.get(team_pk(team_id), _pointer_sk(key_id), consistent=True)
    if pointer is None:
        raise NotFound(f"key '{key_id}' does not exist in team '{team_id}'", code="key_not_found")
    if budget is None:
        update: dict[str, Any] = {"UpdateExpression": "REMOVE budget_micro_usd, budget_period"}
    else:
        update = {
            "UpdateExpression": "SET budget_micro_usd = :b, budget_period = :p",
            "ExpressionAttributeValues": serialize({":b": budget.limit_micro_usd, ":p": budget.period}),
        }
    table.transact(
        [
            {"Update": {"Key": {"pk": {"S": _key_pk(pointer["key_hash"])}, "sk": {"S": "META"}}, **update}},
            {"Update": {"Key": {"pk": {"S": team_pk(team_id)}, "sk": {"S": _pointer_sk(key_id)}}, **update}},
        ]
    )
    _cache.forget(pointer["key_hash"])
    attrs = {k: v for k, v in pointer.items() if k not in ("budget_micro_usd", "budget_period")}
    return ApiKey.from_item({**attrs, **_budget_attributes(budget)})


def _read(key_hash: str) -> ApiKey | None:
    # Strongly consistent: a read just after a revocation must see it, or it would be kept for
    # another KEY_CACHE_SECONDS.
    item = gateway_table().get(_key_pk(key_hash), "META", consistent=True)
    return ApiKey.from_item(item) if item else None


# Unknown keys are cached too, so a flood of bad keys costs one read per key per TTL.
_cache: WarmCache[str, ApiKey | None] = WarmCache(_read, lambda: settings().key_cache_seconds)


def clear_cache() -> None:
    _cache.clear()


def lookup(secret: str) -> ApiKey | None:
    """The key record for a secret, served from the warm cache when fresh enough."""
    return _cache.get(hash_secret(secret))


def parse_bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "Missing API key: send 'Authorization: Bearer sk-aigw-...'", code="missing_api_key"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Malformed Authorization header: expected 'Bearer sk-aigw-...'", code="invalid_api_key"
        )
    return token.strip()


def authenticate(secret: str) -> ApiKey:
    """The active key for ``secret``, or :class:`AuthenticationFailed` saying why not."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        raise AuthenticationFailed("Invalid API key", code="invalid_api_key")
    key = lookup(secret)
    if key is None:
        raise AuthenticationFailed("Invalid API key", code="invalid_api_key")
    status = key.status()
    if status == "revoked":
        raise AuthenticationFailed("This API key has been revoked", code="revoked_api_key")
    if status == "expired":
        raise AuthenticationFailed("This API key has expired", code="expired_api_key")
    return key


def require_admin(key: ApiKey) -> None:
    if not key.is_admin:
        raise PermissionDenied("This route needs an admin key", code="admin_required")


def require_model(key: ApiKey, model_id: str) -> None:
    if not key.allows_model(model_id):
        raise PermissionDenied(
            f"This API key may not use model '{model_id}'", code="model_not_allowed", param="model"
        )


# ---- self-service: a team's keys managed with one of its own keys (the portal's keys page) ----


def create_team_key(
    caller: ApiKey,
    *,
    name: str = "",
    allowed_models: list[str] | None = None,
    expires_at: int | None = None,
    budget: KeyBudget | None = None,
) -> IssuedKey:
    """A member key for the caller's own team, never wider than the caller's own key.

    Roles are not self-service: admin keys are minted through ``/admin`` only. A caller with a
    model allow-list can hand out only patterns from that list (the default is the whole list);
    a caller with a budget only budgets within its own (the default is its own).
    """
    budget = _budget_within_caller(caller, budget)
    if caller.allowed_models is not None:
        if allowed_models is None:
            allowed_models = list(caller.allowed_models)
        wider = [m for m in allowed_models if m not in caller.allowed_models]
        if wider:
            raise PermissionDenied(
                f"A key may not grant models its creator cannot use: {', '.join(wider)}",
                code="models_exceed_caller",
                param="allowed_models",
            )
    if caller.expires_at is not None and (expires_at is None or expires_at > caller.expires_at):
        # A key must not outlive the key that created it.
        expires_at = caller.expires_at
    return create_key(
        caller.team_id,
        name=name,
        role="member",
        allowed_models=allowed_models,
        expires_at=expires_at,
        budget=budget,
    )


def _budget_within_caller(caller: ApiKey, budget: KeyBudget | None) -> KeyBudget | None:
    if caller.budget is None or caller.is_admin:
        return budget
    if budget is None:
        return caller.budget
    if not budget.within(caller.budget):
        raise PermissionDenied(
            "A key may not grant a budget larger than its own "
            f"({caller.budget.limit_micro_usd} micro-USD per {caller.budget.period})",
            code="budget_exceeds_caller",
            param="budget",
        )
    return budget


def set_team_key_budget(caller: ApiKey, key_id: str, budget: KeyBudget | None) -> ApiKey:
    """A team sets (or removes) the budget of one of its keys with one of its own keys.

    Admin keys' budgets are managed through ``/admin`` only. A member key may lower its own
    budget but never raise or remove it, and a key with a budget only sets budgets within its
    own: a capped key cannot uncap itself or mint its way around its cap."""
    target = next((k for k in list_keys(caller.team_id) if k.key_id == key_id), None)
    if target is None:
        raise NotFound(f"key '{key_id}' does not exist in your team", code="key_not_found")
    if target.is_admin and not caller.is_admin:
        raise PermissionDenied("Admin keys' budgets are managed by an admin", code="admin_required")
    if not caller.is_admin:
        if target.key_id == caller.key_id and caller.budget is not None:
            if budget is None or not budget.within(caller.budget):
                raise PermissionDenied(
                    "A key may lower its own budget, never raise or remove it",
                    code="budget_exceeds_caller",
                    param="budget",
                )
        elif caller.budget is not None and (budget is None or not budget.within(caller.budget)):
            raise PermissionDenied(
                "A key with a budget may only set budgets within its own",
                code="budget_exceeds_caller",
                param="budget",
            )
    return set_budget(caller.team_id, key_id, budget)


def revoke_team_key(caller: ApiKey, key_id: str) -> ApiKey:
    """Revoke a key of the caller's own team; admin keys are revoked through ``/admin`` only."""
    target = next((k for k in list_keys(caller.team_id) if k.key_id == key_id), None)
    if target is None:
        raise NotFound(f"key '{key_id}' does not exist in your team", code="key_not_found")
    if target.is_admin and not caller.is_admin:
        raise PermissionDenied("Admin keys can only be revoked by an admin", code="admin_required")
    return revoke_key(caller.team_id, key_id)
