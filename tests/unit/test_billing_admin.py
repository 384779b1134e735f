"""Plans and a team's billing through the admin API, and the CLI's money parsing."""

from __future__ import annotations

import pytest

from aigw import cli, cli_billing, keys, table, teams
from aigw.billing import account
from aigw.bootstrap import bootstrap_admin
from tests.conftest import reset_core
from tests.helpers.apigw import call
from tests.helpers.sdk import openai_client, refusal


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


# ---- issue 11 item 5: a credit pack is never a team's plan; no limit is said, not implied --------


def _prepaid_team(admin: str) -> str:
    teams.create_team("prepaid")
    assert (
        call(
            "PUT",
            "/admin/plans/credits-10",
            body={"kind": "credits", "credits_micro_usd": 10_000_000},
            key=admin,
        ).status
        == 200
    )
    granted = call("POST", "/admin/teams/prepaid/credits", body={"micro_usd": 1_000_000}, key=admin)
    assert granted.json()["funding"] == "credits"
    return keys.create_key("prepaid").secret


def test_a_credit_pack_cannot_be_assigned_as_a_plan(admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on the old main: the assignment was accepted, the team showed funding 'plan' with
    no limits, and its credits never went down."""
    monkeypatch.delenv("DEFAULT_PLAN")
    reset_core()
    key = _prepaid_team(admin)
    reply = call("PUT", "/admin/teams/prepaid/plan", body={"plan_id": "credits-10"}, key=admin)
    assert reply.status == 400
    assert (reply.json()["code"], reply.json()["param"]) == ("plan_is_credit_pack", "plan_id")
    assert "credit pack" in reply.json()["detail"]
    view = call("GET", "/admin/teams/prepaid/billing", key=admin).json()
    assert (view["funding"], view["credits_micro_usd"]) == ("credits", 1_000_000)
    raw = openai_client(key).chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert int(raw.headers["x-billing-credits-remaining-micro-usd"]) < 1_000_000  # credits pay


def test_an_old_credit_pack_assignment_grants_nothing(admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A team assigned a credit pack before the check (stored as it was) is not on a free plan."""
    monkeypatch.delenv("DEFAULT_PLAN")
    reset_core()
    key = _prepaid_team(admin)
    table.gateway_table().update(
        "TEAM#prepaid", "BILLING", expression="SET manual_plan_id = :p", values={":p": "credits-10"}
    )
    account.forget()
    view = call("GET", "/admin/teams/prepaid/billing", key=admin).json()
    assert view["funding"] == "credits"
    account.grant_credits("prepaid", -1_000_000)  # no credits left
    err = refusal(openai_client(key))
    assert (err.status_code, err.code) == (402, "credits_exhausted")


def test_default_plan_naming_a_credit_pack_grants_nothing(
    admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    call(
        "PUT", "/admin/plans/credits-10", body={"kind": "credits", "credits_micro_usd": 10_000_000}, key=admin
    )
    monkeypatch.setenv("DEFAULT_PLAN", "credits-10")
    reset_core()
    teams.create_team("acme")
    err = refusal(openai_client(keys.create_key("acme").secret))
    assert (err.status_code, err.code) == (402, "no_subscription")
    assert "credit pack" in err.message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "plan_limits_missing"),
        ({"name": "Free for all", "allowed_models": ["mock/*"]}, "plan_limits_missing"),
        ({"meter_event_name": "aigw_tokens"}, "plan_limits_missing"),
        ({"unlimited": True, "monthly_tokens": 5}, "invalid_plan"),
        ({"kind": "credits", "credits_micro_usd": 5, "unlimited": True}, "invalid_plan"),
    ],
)
def test_a_plan_without_limits_must_say_unlimited(admin: str, body: dict[str, object], code: str) -> None:
    """Fails on the old main: a plan with every limit left out was silently unlimited."""
    reply = call("PUT", "/admin/plans/open", body=body, key=admin)
    assert reply.status == 400
    assert (reply.json()["code"], reply.json()["param"]) == (code, "unlimited")
    assert call("GET", "/admin/plans/open", key=admin).status == 404


def test_an_unlimited_plan_is_an_explicit_choice(admin: str) -> None:
    reply = call(
        "PUT", "/admin/plans/open", body={"unlimited": True, "allowed_models": ["mock/*"]}, key=admin
    )
    assert (reply.status, reply.json()["unlimited"]) == (200, True)
    limited = call("PUT", "/admin/plans/small", body={"requests_per_minute": 5}, key=admin).json()
    assert limited["unlimited"] is False
    pack = call("PUT", "/admin/plans/pack", body={"kind": "credits", "credits_micro_usd": 5}, key=admin)
    assert pack.status == 200  # a credit pack is bounded by its credits


def test_plans_stored_before_the_rule_keep_working(admin: str) -> None:
    """Stored without 'unlimited': read back as they behave (no limits: unlimited), still usable."""
    for plan_id, extra in (("legacy-open", {}), ("legacy-small", {"monthly_tokens": 100_000})):
        table.gateway_table().put(
            {
                "pk": f"PLAN#{plan_id}",
                "sk": "META",
                "type": "plan",
                "gsi1pk": "PLANS",
                "gsi1sk": plan_id,
                "plan_id": plan_id,
                "name": plan_id,
                "kind": "subscription",
                "default_max_tokens": 4096,
                "credits_micro_usd": 0,
                "updated_at": 1,
                **extra,
            }
        )
    assert call("GET", "/admin/plans/legacy-open", key=admin).json()["unlimited"] is True
    assert call("GET", "/admin/plans/legacy-small", key=admin).json()["unlimited"] is False
    teams.create_team("acme")
    assert call("PUT", "/admin/teams/acme/plan", body={"plan_id": "legacy-open"}, key=admin).status == 200
    completion = openai_client(keys.create_key("acme").secret).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert completion.choices[0].message.content == "Echo: Hello there"


def test_cli_says_unlimited_or_names_a_limit(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI refuses before sending anything (nothing listens on the URL given)."""
    assert cli.build_parser().parse_args(["plans", "create", "open", "--unlimited"]).unlimited is True
    assert (
        cli.main(["--admin-key", "sk-aigw-x", "--url", "http://127.0.0.1:9", "plans", "create", "open"]) == 1
    )
    assert "--unlimited" in capsys.readouterr().err
    assert (
        cli.build_parser().parse_args(["billing", "revoke-links", "--team", "acme"]).action == "revoke-links"
    )
