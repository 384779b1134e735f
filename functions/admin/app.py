"""Administration: teams and their API keys. Every route needs an admin key (checked in
:func:`aigw.web.handle`, before the body is validated)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aigw import cache_settings, keys, teams, web
from aigw.billing import key_budgets
from aigw.cache_settings import CacheSettings
from aigw.keys import ApiKey, KeyBudget, Role

logger = Logger(service="aigw-admin")
app = web.resolver()


class CreateTeam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_id: Annotated[str, Field(pattern=teams.TEAM_ID_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] = ""
    role: Role = "member"
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = None
    expires_at: AwareDatetime | None = None
    budget: KeyBudget | None = None


def _key_view(key: ApiKey) -> dict[str, Any]:
    return {**key.model_dump(), "status": key.status(), "budget": key_budgets.view(key.budget, key.key_id)}


@app.post(
    "/admin/teams",
    responses={201: {"description": "Team created", "content": {"application/json": {"model": teams.Team}}}},
)
def create_team(body: CreateTeam) -> Response[str]:
    team = teams.create_team(body.team_id, body.name)
    return web.json_response(team, status=201)


@app.get("/admin/teams/<team_id>/cache")
def get_cache(team_id: str) -> Response[str]:
    teams.get_team(team_id)
    return web.json_response(cache_settings.settings_for(team_id))


@app.put("/admin/teams/<team_id>/cache")
def put_cache(team_id: str, settings: CacheSettings) -> Response[str]:
    """The team's response cache: on or off, its TTL, temperature > 0, per-key overrides."""
    teams.get_team(team_id)
    return web.json_response(cache_settings.put_settings(team_id, settings))


@app.get("/admin/teams")
def list_teams() -> Response[str]:
    return web.json_response({"data": [t.model_dump() for t in teams.list_teams()]})


@app.get("/admin/teams/<team_id>")
def get_team(team_id: str) -> Response[str]:
    return web.json_response(teams.get_team(team_id))


@app.post(
    "/admin/teams/<team_id>/keys", responses={201: {"description": "Key created; `secret` is shown once"}}
)
def create_key(team_id: str, body: CreateKey) -> Response[str]:
    issued = keys.create_key(
        team_id,
        name=body.name,
        role=body.role,
        allowed_models=body.allowed_models,
        expires_at=int(body.expires_at.timestamp()) if body.expires_at else None,
        budget=body.budget,
    )
    return web.json_response({**_key_view(issued.key), "secret": issued.secret}, status=201)


@app.get("/admin/teams/<team_id>/keys")
def list_keys(team_id: str) -> Response[str]:
    teams.get_team(team_id)
    return web.json_response({"data": [_key_view(k) for k in keys.list_keys(team_id)]})


@app.delete("/admin/teams/<team_id>/keys/<key_id>")
def revoke_key(team_id: str, key_id: str) -> Response[str]:
    return web.json_response(_key_view(keys.revoke_key(team_id, key_id)))


@app.put("/admin/teams/<team_id>/keys/<key_id>/budget")
def set_key_budget(team_id: str, key_id: str, body: KeyBudget) -> Response[str]:
    """Give a key its own spend cap per UTC day or month (e.g. a CI key with $5 a day)."""
    return web.json_response(_key_view(keys.set_budget(team_id, key_id, body)))


@app.delete("/admin/teams/<team_id>/keys/<key_id>/budget")
def remove_key_budget(team_id: str, key_id: str) -> Response[str]:
    return web.json_response(_key_view(keys.set_budget(team_id, key_id, None)))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, admin_only=True)
