"""Model catalog overrides: prices, upstream names, new models, aliases and fallback chains,
changed in DynamoDB without a deploy. Every route needs an admin key."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from aigw import catalog, web
from aigw.catalog import ModelEntry
from aigw.chat import ModelInfo

logger = Logger(service="aigw-catalog-admin")
app = web.resolver()


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(min_length=1, max_length=10)


def _view(info: ModelInfo, overridden: set[str]) -> dict[str, Any]:
    return {**info.model_dump(mode="json"), "source": "override" if info.id in overridden else "builtin"}


@app.get("/admin/models")
def list_catalog() -> Response[str]:
    overrides = catalog.overrides()
    overridden = {o.name for o in overrides if o.kind == "model"}
    current = catalog.catalog()
    return web.json_response(
        {
            "data": [_view(m, overridden) for m in current.all()],
            "aliases": {name: list(targets) for name, targets in sorted(current.aliases.items())},
            "overrides": [o.model_dump(mode="json", exclude_none=True) for o in overrides],
        }
    )


@app.put("/admin/models")
def put_model(body: ModelEntry) -> Response[str]:
    return web.json_response(catalog.put_model(body).model_dump(mode="json"))


@app.delete("/admin/models/<provider>/<name>")
def disable_model(provider: str, name: str) -> Response[str]:
    catalog.disable_model(f"{provider}/{name}")
    return web.json_response({"id": f"{provider}/{name}", "disabled": True})


@app.delete("/admin/models/<provider>/<name>/override")
def reset_model(provider: str, name: str) -> Response[str]:
    catalog.remove_override("model", f"{provider}/{name}")
    return web.json_response({"id": f"{provider}/{name}", "override": None})


@app.put("/admin/aliases/<alias>")
def put_alias(alias: str, body: AliasBody) -> Response[str]:
    return web.json_response({"alias": alias, "targets": list(catalog.put_alias(alias, body.targets))})


@app.delete("/admin/aliases/<alias>")
def delete_alias(alias: str) -> Response[str]:
    catalog.remove_override("alias", alias)
    return web.json_response({"alias": alias, "override": None})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, admin_only=True)
