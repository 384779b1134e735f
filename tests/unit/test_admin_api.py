"""The /admin routes through the real handler, on moto."""

from __future__ import annotations

import pytest

from aigw import keys
from aigw.bootstrap import bootstrap_admin
from tests.helpers.apigw import call, invoke_event, sample_event


@pytest.fixture
def admin() -> str:
    return bootstrap_admin().secret


def _problem(reply_json: dict[str, object], status: int) -> dict[str, object]:
    assert reply_json["status"] == status
    assert {"type", "title", "status", "detail", "code"} <= set(reply_json)
    return reply_json


def test_team_lifecycle(admin: str) -> None:
    created = call("POST", "/admin/teams", body={"team_id": "acme", "name": "Acme Inc"}, key=admin)
    assert created.status == 201
    assert created.json()["team_id"] == "acme"
    listed = call("GET", "/admin/teams", key=admin).json()["data"]
    assert {t["team_id"] for t in listed} == {"admin", "acme"}
    assert call("GET", "/admin/teams/acme", key=admin).json()["name"] == "Acme Inc"


def test_duplicate_team_is_409_problem(admin: str) -> None:
    call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    reply = call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    assert reply.status == 409
    assert reply.header("Content-Type") == "application/problem+json"
    assert _problem(reply.json(), 409)["code"] == "team_exists"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"team_id": "Bad Id!"}, "team_id"), ({}, "team_id"), ({"team_id": "ok-team", "color": "red"}, "color")],
)
def test_invalid_team_bodies_are_400_naming_the_field(admin: str, body: dict[str, str], param: str) -> None:
    reply = call("POST", "/admin/teams", body=body, key=admin)
    assert reply.status == 400
    assert _problem(reply.json(), 400)["param"] == param


def test_key_creation_shows_secret_once_and_listing_never(admin: str) -> None:
    call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    event = sample_event("apigw/admin-create-key.json")
    event["headers"]["Authorization"] = event["multiValueHeaders"]["Authorization"][0] = f"Bearer {admin}"
    from tests.helpers.apigw import build_event

    _, route = build_event("POST", "/admin/teams/acme/keys")
    created = invoke_event(event, route)
    assert created.status == 201
    body = created.json()
    assert body["secret"].startswith("sk-aigw-")
    assert body["allowed_models"] == ["mock/*"]
    assert body["expires_at"] == 1798761600  # 2027-01-01T00:00:00Z
    listed = call("GET", "/admin/teams/acme/keys", key=admin)
    assert body["secret"] not in listed.body
    (row,) = listed.json()["data"]
    assert (row["key_id"], row["prefix"], row["status"]) == (body["key_id"], body["secret"][:12], "active")


def test_revoked_key_stops_working(admin: str) -> None:
    call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    created = call("POST", "/admin/teams/acme/keys", body={"name": "temp"}, key=admin).json()
    chat = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    assert call("POST", "/v1/chat/completions", body=chat, key=created["secret"]).status == 200
    revoked = call("DELETE", f"/admin/teams/acme/keys/{created['key_id']}", key=admin)
    assert revoked.status == 200
    assert revoked.json()["status"] == "revoked"
    assert call("POST", "/v1/chat/completions", body=chat, key=created["secret"]).status == 401


def test_key_with_past_expiry_is_refused(admin: str) -> None:
    call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    reply = call("POST", "/admin/teams/acme/keys", body={"expires_at": "2001-01-01T00:00:00Z"}, key=admin)
    assert reply.status == 400
    assert reply.json()["param"] == "expires_at"


def test_naive_expiry_without_zone_is_refused(admin: str) -> None:
    call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    reply = call("POST", "/admin/teams/acme/keys", body={"expires_at": "2030-01-01T00:00:00"}, key=admin)
    assert reply.status == 400
    assert reply.json()["param"] == "expires_at"


def test_unknown_team_and_key_are_404(admin: str) -> None:
    assert call("GET", "/admin/teams/ghost", key=admin).status == 404
    assert call("GET", "/admin/teams/ghost/keys", key=admin).status == 404
    assert call("POST", "/admin/teams/ghost/keys", body={}, key=admin).status == 404
    assert call("DELETE", "/admin/teams/admin/keys/key_nope", key=admin).status == 404


def test_member_keys_cannot_administer(admin: str) -> None:
    call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin)
    member = keys.create_key("acme").secret
    reply = call("POST", "/admin/teams", body={"team_id": "evil"}, key=member)
    assert reply.status == 403
    assert _problem(reply.json(), 403)["code"] == "admin_required"
    assert call("GET", "/admin/teams/acme/keys", key=member).status == 403


def test_admin_routes_need_a_key() -> None:
    reply = call("GET", "/admin/teams")
    assert reply.status == 401
    assert reply.header("Content-Type") == "application/problem+json"
