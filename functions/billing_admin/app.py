"""Administration of billing: plans (keyed by Stripe price lookup_key) and a team's terms.
Every route needs an admin key (checked in :func:`aigw.web.handle`)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from aigw import teams, web
from aigw.billing import account, machine_payments, plans
from aigw.errors import InvalidRequest

logger = Logger(service="aigw-billing-admin")
app = web.resolver()


class AssignPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: Annotated[str, Field(pattern=plans.PLAN_ID_PATTERN)] | None


class GrantCredits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    micro_usd: Annotated[int, Field(ge=1, le=10**15)]


def _plan_id(plan_id: str) -> str:
    if not plans.valid_plan_id(plan_id):
        raise InvalidRequest(
            "plan_id must be a Stripe price lookup_key (letters, digits, _.:-)", param="plan_id"
        )
    return plan_id


@app.put("/admin/plans/<plan_id>")
def put_plan(plan_id: str, body: plans.PlanSpec) -> Response[str]:
    return web.json_response(plans.put_plan(_plan_id(plan_id), body))


@app.get("/admin/plans")
def list_plans() -> Response[str]:
    return web.json_response({"data": [p.model_dump() for p in plans.list_plans()]})


@app.get("/admin/plans/<plan_id>")
def get_plan(plan_id: str) -> Response[str]:
    return web.json_response(plans.get_plan(plan_id))


@app.delete("/admin/plans/<plan_id>")
def delete_plan(plan_id: str) -> Response[str]:
    return web.json_response(plans.delete_plan(plan_id))


@app.get("/admin/teams/<team_id>/billing")
def team_billing(team_id: str) -> Response[str]:
    teams.get_team(team_id)
    return web.json_response(account.summary(team_id).model_dump())


@app.put("/admin/teams/<team_id>/plan")
def assign_plan(team_id: str, body: AssignPlan) -> Response[str]:
    teams.get_team(team_id)
    return web.json_response(account.assign_plan(team_id, body.plan_id).model_dump())


@app.post("/admin/teams/<team_id>/credits")
def grant_credits(team_id: str, body: GrantCredits) -> Response[str]:
    teams.get_team(team_id)
    return web.json_response(account.grant_credits(team_id, body.micro_usd).model_dump())


@app.post("/admin/teams/<team_id>/billing/revoke-links")
def revoke_links(team_id: str) -> Response[str]:
    """Void every billing link issued to the team so far (402 fix links, /billing/status links)."""
    teams.get_team(team_id)
    return web.json_response({"team_id": team_id, "link_generation": account.revoke_links(team_id)})


@app.get("/admin/teams/<team_id>/machine-payments")
def machine_payment_settings(team_id: str) -> Response[str]:
    teams.get_team(team_id)
    return web.json_response(machine_payments.view(team_id))


@app.put("/admin/teams/<team_id>/machine-payments")
def set_machine_payments(team_id: str, body: machine_payments.PolicyUpdate) -> Response[str]:
    teams.get_team(team_id)
    machine_payments.put_policy(web.current_key(app), team_id, body)
    return web.json_response(machine_payments.view(team_id))


@app.get("/admin/teams/<team_id>/machine-payments/payments")
def machine_payment_audit(team_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response[str]:
    """Every machine payment of the team, newest first: who (key), when, amount, PaymentIntent."""
    teams.get_team(team_id)
    payments = machine_payments.list_payments(team_id, limit=limit)
    return web.json_response({"data": [p.model_dump(exclude_none=True) for p in payments]})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, admin_only=True)
