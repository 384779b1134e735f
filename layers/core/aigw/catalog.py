"""The model catalog: which ``provider/model`` ids exist, what they cost, aliases and fallbacks.

The built-in catalog ships in ``data/models.json``. Admins override it in DynamoDB (a model's
prices or upstream name, a new model, an alias, a fallback chain) without a deploy; a warm
container re-reads the overrides every ``CATALOG_CACHE_SECONDS`` (default 30).

Items: ``pk=CATALOG``, ``sk=MODEL#<id>`` (a whole model entry, or ``disabled``) and
``sk=ALIAS#<name>`` (``targets``: the chain tried in order).

Each model has an output limit (``max_output_tokens``): a caller asking for more is refused,
and no call is ever sent upstream without a limit at most this one.
"""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aigw.chat import ModelInfo as ModelInfo  # its home is aigw.chat; re-exported for callers
from aigw.config import settings
from aigw.errors import InvalidRequest, NotFound
from aigw.table import ConditionFailed, gateway_table
from aigw.warm_cache import WarmCache

CATALOG_PK = "CATALOG"


class ModelEntry(BaseModel):
    """A catalog entry as an admin submits it, checked at the edge. ``max_output_tokens`` left
    out keeps the model's current limit (a new model: its context window)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*/\S+$", max_length=256)
    provider: str = Field(min_length=1, max_length=64)
    upstream: str = Field(min_length=1, max_length=256)
    context_window: int = Field(ge=1, le=100_000_000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    input_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    created: int = 0
    fallbacks: tuple[str, ...] = Field(default=(), max_length=10)
    mode: Literal["chat", "embedding"] = "chat"
    dimensions: int | None = Field(default=None, ge=1, le=100_000)
    min_dimensions: int | None = Field(default=None, ge=1, le=100_000)


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    models: dict[str, ModelInfo]
    aliases: dict[str, tuple[str, ...]]

    def _missing(self, model_id: str) -> NotFound:
        hint = ""
        suggestions = self.suggest(model_id)
        if suggestions:
            hint = (
                f" Did you mean {' or '.join(repr(s) for s in suggestions)}? Model ids name their provider."
            )
        return NotFound(
            f"The model '{model_id}' does not exist.{hint} GET /v1/models lists the available ones.",
            code="model_not_found",
            param="model",
        )

    def suggest(self, model_id: str) -> list[str]:
        """Ids the caller may have meant: ``gpt-4o`` is ``openai/gpt-4o`` (and ``azure/...``)."""
        names = [*self.models, *self.aliases]
        bare = [m for m in self.models if m.split("/", 1)[-1] == model_id]
        if bare:
            return sorted(bare, key=lambda m: (not m.startswith("openai/"), m))[:3]
        import difflib

        return difflib.get_close_matches(model_id, names, n=2, cutoff=0.75)

    def resolve(self, model_id: str) -> ModelInfo:
        return self.chain(model_id)[0]

    def chain(self, model_id: str) -> list[ModelInfo]:
        """The models to try for ``model_id``, in order: an alias's targets, each followed by
        its own fallbacks, without repeats and skipping ids the catalog does not know."""
        targets = self.aliases.get(model_id, (model_id,))
        if targets[0] not in self.models:
            raise self._missing(model_id)
        order: list[str] = []
        for target in targets:
            info = self.models.get(target)
            if info is None:
                continue
            for candidate in (target, *info.fallbacks):
                if candidate in self.models and candidate not in order:
                    order.append(candidate)
        return [self.models[m] for m in order]

    def all(self) -> list[ModelInfo]:
        return sorted(self.models.values(), key=lambda m: m.id)


_ROUTE_OF_MODE = {
    "chat": "/v1/chat/completions (or /v1/messages, /v1/responses)",
    "embedding": "/v1/embeddings",
}


def require_mode(model: ModelInfo, mode: str, requested: str) -> None:
    """400 when a model is asked for something it does not do (an embedding model on chat)."""
    if model.mode != mode:
        raise InvalidRequest(
            f"The model '{requested}' is a{'n' if model.mode[0] in 'ae' else ''} {model.mode} model: "
            f"call it on {_ROUTE_OF_MODE[model.mode]}",
            code="model_not_supported",
            param="model",
        )


def builtin() -> tuple[dict[str, ModelInfo], dict[str, tuple[str, ...]]]:
    raw = json.loads(resources.files("aigw").joinpath("data/models.json").read_text("utf-8"))
    models = {m["id"]: ModelInfo.model_validate(m) for m in raw["models"]}
    return models, {name: _targets(value) for name, value in raw.get("aliases", {}).items()}


def _targets(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _stored(data: dict[str, Any], builtins: dict[str, ModelInfo]) -> ModelInfo:
    """A model as an override stored it. Overrides written before models had an output limit
    keep the built-in model's limit, or else take the context window."""
    if data.get("max_output_tokens") is None:
        known = builtins.get(str(data.get("id")))
        limit = known.max_output_tokens if known is not None else data.get("context_window")
        data = {**data, "max_output_tokens": limit}
    return ModelInfo.model_validate(data)


def _merge(items: list[dict[str, Any]]) -> Catalog:
    models, aliases = builtin()
    builtins = dict(models)
    for item in items:
        sk = str(item["sk"])
        if sk.startswith("MODEL#"):
            model_id = sk.removeprefix("MODEL#")
            if item.get("disabled"):
                models.pop(model_id, None)
            else:
                models[model_id] = _stored(item["model"], builtins)
        elif sk.startswith("ALIAS#"):
            aliases[sk.removeprefix("ALIAS#")] = tuple(item["targets"])
    return Catalog(models=models, aliases=aliases)


def _load(_: str) -> Catalog:
    return _merge(gateway_table().query("pk = :p", {":p": CATALOG_PK}))


_cache: WarmCache[str, Catalog] = WarmCache(_load, lambda: settings().catalog_cache_seconds)


def catalog() -> Catalog:
    """The effective catalog: built-in entries with the admins' overrides on top."""
    return _cache.get("")


def clear_cache() -> None:
    _cache.clear()


# ---- admin overrides -------------------------------------------------------------------


class Override(BaseModel):
    """One admin change to the catalog, as listed by ``GET /admin/models/overrides``."""

    model_config = ConfigDict(frozen=True)

    kind: str
    name: str
    model: ModelInfo | None = None
    disabled: bool = False
    targets: tuple[str, ...] | None = None
    updated_at: int


def _table() -> Any:
    return gateway_table()


def _now() -> int:
    from aigw import clock

    return clock.now()


def put_model(entry: ModelEntry) -> ModelInfo:
    from aigw import providers

    if entry.provider not in providers.names():
        known = ", ".join(providers.names())
        raise InvalidRequest(f"Unknown provider '{entry.provider}'; known: {known}", param="provider")
    current = catalog().models
    for fallback in entry.fallbacks:
        if fallback not in current:
            raise InvalidRequest(f"Unknown fallback model '{fallback}'", param="fallbacks")
    limit = entry.max_output_tokens
    if limit is None:
        existing = current.get(entry.id)
        limit = min(existing.max_output_tokens if existing else entry.context_window, entry.context_window)
    if limit > entry.context_window:
        raise InvalidRequest(
            f"max_output_tokens ({limit}) cannot exceed context_window ({entry.context_window})",
            param="max_output_tokens",
        )
    info = ModelInfo.model_validate({**entry.model_dump(), "max_output_tokens": limit})
    item = {
        "pk": CATALOG_PK,
        "sk": f"MODEL#{info.id}",
        "type": "catalog_model",
        "model": json.loads(info.model_dump_json()),
        "updated_at": _now(),
    }
    _table().put(item)
    clear_cache()
    return info


def disable_model(model_id: str) -> None:
    if model_id not in catalog().models:
        raise NotFound(f"The model '{model_id}' is not in the catalog", code="model_not_found")
    _table().put(
        {
            "pk": CATALOG_PK,
            "sk": f"MODEL#{model_id}",
            "type": "catalog_model",
            "disabled": True,
            "updated_at": _now(),
        }
    )
    clear_cache()


def put_alias(name: str, targets: list[str]) -> tuple[str, ...]:
    known = catalog().models
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise InvalidRequest(f"Unknown model(s) in the alias: {', '.join(unknown)}", param="targets")
    _table().put(
        {
            "pk": CATALOG_PK,
            "sk": f"ALIAS#{name}",
            "type": "catalog_alias",
            "targets": targets,
            "updated_at": _now(),
        }
    )
    clear_cache()
    return tuple(targets)


def remove_override(kind: str, name: str) -> None:
    """Drop an override: the built-in entry (if any) applies again."""
    prefix = "MODEL#" if kind == "model" else "ALIAS#"
    try:
        _table().delete(CATALOG_PK, prefix + name, condition="attribute_exists(pk)")
    except ConditionFailed as exc:
        raise NotFound(f"No override for {kind} '{name}'", code="override_not_found") from exc
    clear_cache()


def overrides() -> list[Override]:
    out = []
    builtins = builtin()[0]
    for item in _table().query("pk = :p", {":p": CATALOG_PK}, consistent=True):
        kind, _, name = str(item["sk"]).partition("#")
        out.append(
            Override(
                kind=kind.lower(),
                name=name,
                model=_stored(item["model"], builtins) if item.get("model") else None,
                disabled=bool(item.get("disabled")),
                targets=tuple(item["targets"]) if item.get("targets") else None,
                updated_at=int(item.get("updated_at", 0)),
            )
        )
    return out
