"""The model catalog: which ``provider/model`` ids exist, what they cost, and aliases."""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from importlib import resources

from pydantic import BaseModel, ConfigDict

from aigw.errors import NotFound


class ModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    provider: str
    upstream: str
    context_window: int
    input_per_mtok: Decimal
    cached_input_per_mtok: Decimal
    output_per_mtok: Decimal
    created: int = 0


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    models: dict[str, ModelInfo]
    aliases: dict[str, str]

    def resolve(self, model_id: str) -> ModelInfo:
        target = self.aliases.get(model_id, model_id)
        info = self.models.get(target)
        if info is None:
            raise NotFound(
                f"The model '{model_id}' does not exist; GET /v1/models lists the available ones",
                code="model_not_found",
                param="model",
            )
        return info

    def all(self) -> list[ModelInfo]:
        return sorted(self.models.values(), key=lambda m: m.id)


@functools.cache
def catalog() -> Catalog:
    raw = json.loads(resources.files("aigw").joinpath("data/models.json").read_text("utf-8"))
    models = {m["id"]: ModelInfo.model_validate(m) for m in raw["models"]}
    return Catalog(models=models, aliases=dict(raw.get("aliases", {})))
