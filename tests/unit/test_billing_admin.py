"""Plans and a team's billing through the admin API, and the CLI's money parsing."""

from __future__ import annotations

import pytest

from aigw import cli, cli_billing, keys, teams
from aigw.bootstrap import bootstrap_admin
from tests.helpers.apigw import call


@pytest.fixture
def admin() -> str:
    return bootstrap_admin().secret


def test_plans_are_managed_as_data(admin: str) -> None:
    spec = {
        "name": "Pro",
        "monthly_tokens": 1_000_000,
        "requests_per_minute": 60,
        "allowed_models": ["mock/*"],
    }
    reply = call("PUT", "/admin/plans/pro-monthly", body=spec, key=admin)
    assert reply.status == 200
    assert reply.json()["plan_id"] == "pro-monthly"
    assert call("GET", "/admin/plans/pro-monthly", key=admin).json()["monthly_tokens"] == 1_000_000
    listed = {p["plan_id"] for p in call("GET", "/admin/plans", key=admin).json()["data"]}
    assert {"pro-monthly", "everyone"} <= listed
    changed = call("PUT", "/admin/plans/pro-monthly", body={**spec, "monthly_tokens": 5}, key=admin)
    assert changed.json()["monthly_tokens"] == 5
    assert call("DELETE", "/admin/plans/pro-monthly", key=admin).status == 200
    missing = call("GET", "/admin/plans/pro-monthly", key=admin)
    assert (missing.status, missing.json()["code"]) == (404, "plan_not_found")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"monthly_tokens": -1}, "monthly_tokens"),
        ({"kind": "lifetime"}, "kind"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"spend_cap_micro_usd": 1.5}, "spend_cap_micro_usd"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_plans_get_400_naming_the_field(admin: str, body: dict[str, object], param: str) -> None:
    reply = call("PUT", "/admin/plans/p1", body=body, key=admin)
    assert reply.status == 400
    assert reply.json()["param"] == param


def test_plan_routes_need_an_admin_key(admin: str) -> None:
    teams.create_team("acme")
    member = keys.create_key("acme").secret
    assert call("GET", "/admin/plans", key=member).status == 403
    assert call("GET", "/admin/plans").status == 401


def test_assign_plan_and_grant_credits(admin: str) -> None:
    teams.create_team("acme")
    call("PUT", "/admin/plans/gold", body={"monthly_tokens": 10}, key=admin)
    view = call("PUT", "/admin/teams/acme/plan", body={"plan_id": "gold"}, key=admin).json()
    assert (view["plan_id"], view["monthly_tokens"], view["allowed"]) == ("gold", 10, True)
    unknown = call("PUT", "/admin/teams/acme/plan", body={"plan_id": "nope"}, key=admin)
    assert unknown.status == 404
    granted = call("POST", "/admin/teams/acme/credits", body={"micro_usd": 2_500_000}, key=admin).json()
    assert granted["credits_micro_usd"] == 2_500_000
    assert call("POST", "/admin/teams/acme/credits", body={"micro_usd": 0}, key=admin).status == 400
    assert call("GET", "/admin/teams/ghost/billing", key=admin).status == 404


def test_cli_reads_usd_exactly() -> None:
    assert cli_billing.micro_usd("12.345678") == 12_345_678
    assert cli_billing.micro_usd("0.1") == 100_000
    with pytest.raises(cli.CliError):
        cli_billing.micro_usd("ten")
    with pytest.raises(cli.CliError):
        cli_billing.micro_usd("-1")


def test_cli_has_plans_and_billing_commands() -> None:
    args = cli.build_parser().parse_args(
        ["plans", "create", "pro", "--tokens", "100", "--spend-cap", "5", "--rpm", "10"]
    )
    assert (args.plan_id, args.tokens, args.spend_cap, args.rpm) == ("pro", 100, "5", 10)
    args = cli.build_parser().parse_args(["billing", "grant", "--team", "acme", "--usd", "10"])
    assert (args.team, args.usd) == ("acme", "10")


def test_billing_links_need_a_token() -> None:
    reply = call("GET", "/billing/portal")
    assert reply.status == 400
    assert reply.json()["param"] == "token"
