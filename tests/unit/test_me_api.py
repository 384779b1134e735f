"""/me: any key sees its own account and manages its own team's member keys, nothing wider."""

from __future__ import annotations

import pytest

from aigw import keys, teams
from tests.helpers.apigw import call


@pytest.fixture
def acme() -> str:
    teams.create_team("acme", "Acme Inc")
    return keys.create_key("acme", name="owner", allowed_models=["mock/*", "openai/gpt-4o-mini"]).secret


def test_me_names_the_key_and_team_without_secrets(acme: str) -> None:
    reply = call("GET", "/me", key=acme)
    assert reply.status == 200
    body = reply.json()
    assert body["team"] == {"team_id": "acme", "name": "Acme Inc", "created_at": body["team"]["created_at"]}
    assert (body["role"], body["key"]["name"], body["key"]["status"]) == ("member", "owner", "active")
    assert acme not in reply.body
    assert "key_hash" not in reply.body


def test_team_key_creates_lists_and_revokes_its_teams_keys(acme: str) -> None:
    created = call("POST", "/me/keys", key=acme, body={"name": "ci", "allowed_models": ["mock/*"]})
    assert created.status == 201
    new = created.json()
    assert new["secret"].startswith("sk-aigw-")
    assert (new["role"], new["allowed_models"]) == ("member", ["mock/*"])
    listed = call("GET", "/me/keys", key=acme).json()["data"]
    assert sorted(k["name"] for k in listed) == ["ci", "owner"]
    assert all("secret" not in k for k in listed)
    hello = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    assert call("POST", "/v1/chat/completions", key=new["secret"], body=hello).status == 200
    revoked = call("DELETE", f"/me/keys/{new['key_id']}", key=acme)
    assert (revoked.status, revoked.json()["status"]) == (200, "revoked")
    refused = call("POST", "/v1/chat/completions", key=new["secret"], body=hello)
    assert (refused.status, refused.json()["error"]["code"]) == (401, "revoked_api_key")


def test_a_new_key_is_never_wider_than_its_creator(acme: str) -> None:
    wider = call("POST", "/me/keys", key=acme, body={"allowed_models": ["openai/*"]})
    assert (wider.status, wider.json()["param"]) == (403, "allowed_models")
    default = call("POST", "/me/keys", key=acme, body={"name": "same"}).json()
    assert default["allowed_models"] == ["mock/*", "openai/gpt-4o-mini"]
    assert call("POST", "/me/keys", key=acme, body={"role": "admin"}).status == 400  # no such field here


def test_other_teams_keys_and_admin_keys_are_out_of_reach(acme: str) -> None:
    teams.create_team("other")
    theirs = keys.create_key("other", name="theirs").key
    assert call("DELETE", f"/me/keys/{theirs.key_id}", key=acme).status == 404
    assert keys.list_keys("other")[0].status() == "active"
    admin_in_team = keys.create_key("acme", name="boss", role="admin").key
    refused = call("DELETE", f"/me/keys/{admin_in_team.key_id}", key=acme)
    assert (refused.status, refused.json()["code"]) == (403, "admin_required")
    assert call("GET", "/admin/teams/acme/keys", key=acme).status == 403


def test_models_lists_only_allowed_models_with_prices(acme: str) -> None:
    models = call("GET", "/me/models", key=acme).json()["data"]
    assert [m["id"] for m in models] == ["mock/echo", "mock/embed", "openai/gpt-4o-mini"]
    assert models[0]["input_per_mtok"] == "1.00"
    assert call("GET", "/me/models").status == 401
