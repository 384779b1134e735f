"""The caller's own account, for any key: who am I, my team's keys, the models I may use.

Team keys manage their own team's member keys here; ``/admin`` stays admin-only.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aigw import credentials, keys, teams, web
from aigw.billing import key_budgets, machine_payments
from aigw.catalog import catalog
from aigw.keys import ApiKey, KeyBudget

logger = Logger(service="aigw-me")
app = web.resolver()


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] = ""
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = None
    expires_at: AwareDatetime | None = None
    budget: KeyBudget | None = None


def _key_view(key: ApiKey) -> dict[str, Any]:
    return {**key.model_dump(), "status": key.status(), "budget": key_budgets.view(key.budget, key.key_id)}


@app.get("/me")
def me() -> Response[str]:
    key = web.current_key(app)
    team = teams.get_team(key.team_id)
    return web.json_response({"key": _key_view(key), "team": team.model_dump(), "role": key.role})


@app.get("/me/keys")
def list_keys() -> Response[str]:
    key = web.current_key(app)
    return web.json_response({"data": [_key_view(k) for k in keys.list_keys(key.team_id)]})


@app.post("/me/keys", responses={201: {"description": "Key created; `secret` is shown once"}})
def create_key(body: CreateKey) -> Response[str]:
    issued = keys.create_team_key(
        web.current_key(app),
        name=body.name,
        allowed_models=body.allowed_models,
        expires_at=int(body.expires_at.timestamp()) if body.expires_at else None,
        budget=body.budget,
    )
    return web.json_response({**_key_view(issued.key), "secret": issued.secret}, status=201)


@app.delete("/me/keys/<key_id>")
def revoke_key(key_id: str) -> Response[str]:
    return web.json_response(_key_view(keys.revoke_team_key(web.current_key(app), key_id)))


@app.put("/me/keys/<key_id>/budget")
def set_key_budget(key_id: str, body: KeyBudget) -> Response[str]:
    """Give one of the team's keys its own spend cap per UTC day or month."""
    return web.json_response(_key_view(keys.set_team_key_budget(web.current_key(app), key_id, body)))


@app.delete("/me/keys/<key_id>/budget")
def remove_key_budget(key_id: str) -> Response[str]:
    return web.json_response(_key_view(keys.set_team_key_budget(web.current_key(app), key_id, None)))


@app.get("/me/models")
def models() -> Response[str]:
    """The models this key may call, with prices (USD per 1M tokens, as decimal strings) and
    whether this gateway has their provider's key (``configured``)."""
    key = web.current_key(app)
    rows = [
        {
            "id": m.id,
            "provider": m.provider,
            "context_window": m.context_window,
            "input_per_mtok": str(m.input_per_mtok),
            "cached_input_per_mtok": str(m.cached_input_per_mtok),
            "output_per_mtok": str(m.output_per_mtok),
            "configured": credentials.configured(m.provider),
        }
        for m in catalog().all()
        if key.allows_model(m.id)
    ]
    return web.json_response({"data": rows})


@app.get("/me/machine-payments")
def my_machine_payments() -> Response[str]:
    """The team's machine payment settings, today's top-ups and its latest machine payments."""
    return web.json_response(machine_payments.view(web.current_key(app).team_id))


@app.put("/me/machine-payments")
def narrow_machine_payments(body: machine_payments.PolicyUpdate) -> Response[str]:
    """Team keys may switch machine payments off or lower a ceiling; widening needs an admin."""
    key = web.current_key(app)
    machine_payments.put_policy(key, key.team_id, body)
    return web.json_response(machine_payments.view(key.team_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context)
