"""Sharing: visibility, the catalog, access requests and the owner's decisions."""

from __future__ import annotations

import pytest

from tests.helpers.apigw import call
from tests.helpers.prompt_apis import Actors, create, make_actors, move, published, share_org

CALL = {"text": "hello"}


@pytest.fixture
def actors() -> Actors:
    return make_actors()


def _slugs(key: str, query: str = "") -> list[str]:
    reply = call("GET", "/catalog" + query, key=key)
    assert reply.status == 200, reply.body
    return [e["slug"] for e in reply.json()["data"]]


def test_private_api_is_invisible_to_other_teams(actors: Actors) -> None:
    published(actors.owner)
    assert _slugs(actors.owner) == ["summarize"]
    assert _slugs(actors.other) == []
    reply = call("POST", "/apis/summarize", body=CALL, key=actors.other)
    assert (reply.status, reply.json()["code"]) == (404, "api_not_found")
    assert call("GET", "/apis/summarize/openapi.json", key=actors.other).status == 404


def test_shared_api_is_callable_by_named_teams_only(actors: Actors) -> None:
    published(actors.owner)
    reply = call(
        "PUT",
        "/apis/summarize/sharing",
        body={"visibility": "shared", "shared_with": ["beta"]},
        key=actors.owner,
    )
    assert reply.status == 200
    assert reply.json()["shared_with"] == ["beta"]
    assert call("POST", "/apis/summarize", body=CALL, key=actors.other).status == 200
    assert _slugs(actors.other) == ["summarize"]
    assert call("POST", "/apis/summarize", body=CALL, key=actors.third).status == 404
    assert _slugs(actors.third) == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"visibility": "shared", "shared_with": []}, "shared_with"),
        ({"visibility": "org", "shared_with": ["beta"]}, "shared_with"),
        ({"visibility": "everyone"}, "visibility"),
    ],
)
def test_bad_sharing_settings_are_refused(actors: Actors, body: dict[str, object], param: str) -> None:
    published(actors.owner)
    reply = call("PUT", "/apis/summarize/sharing", body=body, key=actors.owner)
    assert (reply.status, reply.json()["param"]) == (400, param)


def test_org_listed_api_needs_an_approved_request(actors: Actors) -> None:
    published(actors.owner)
    share_org(actors.owner)
    (entry,) = call("GET", "/catalog", key=actors.other).json()["data"]
    assert (entry["slug"], entry["access"], entry["owner_team"]) == ("summarize", "none", "acme")

    refused = call("POST", "/apis/summarize", body=CALL, key=actors.other)
    assert refused.status == 403
    assert refused.json()["code"] == "access_required"
    assert "POST /apis/summarize/access-requests" in refused.json()["detail"]

    asked = call("POST", "/apis/summarize/access-requests", body={"reason": "for our bot"}, key=actors.other)
    assert asked.status == 201
    assert asked.json()["status"] == "pending"
    again = call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    assert (again.status, again.json()["status"]) == (200, "pending")

    pending = call("POST", "/apis/summarize", body=CALL, key=actors.other)
    assert (pending.status, pending.json()["code"]) == (403, "access_pending")
    assert "acme" in pending.json()["detail"]

    listed = call("GET", "/apis/summarize/access-requests", key=actors.owner).json()["data"]
    assert [(r["team_id"], r["status"], r["reason"]) for r in listed] == [("beta", "pending", "for our bot")]
    # Only the owner decides; the requester cannot approve itself.
    self_approve = call(
        "PUT", "/apis/summarize/access-requests/beta", body={"status": "approved"}, key=actors.other
    )
    assert (self_approve.status, self_approve.json()["code"]) == (403, "not_api_owner")
    assert call("GET", "/apis/summarize/access-requests", key=actors.other).status == 403

    approved = call(
        "PUT", "/apis/summarize/access-requests/beta", body={"status": "approved"}, key=actors.owner
    )
    assert approved.status == 200
    assert (approved.json()["status"], approved.json()["decided_by_team"]) == ("approved", "acme")
    assert call("POST", "/apis/summarize", body=CALL, key=actors.other).status == 200
    (entry,) = call("GET", "/catalog", key=actors.other).json()["data"]
    assert entry["access"] == "approved"
    # Approval is per team: gamma still has none.
    assert call("POST", "/apis/summarize", body=CALL, key=actors.third).json()["code"] == "access_required"


def test_rejected_team_is_told_and_may_ask_again(actors: Actors) -> None:
    published(actors.owner)
    share_org(actors.owner)
    call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    rejected = call(
        "PUT", "/apis/summarize/access-requests/beta", body={"status": "rejected"}, key=actors.owner
    )
    assert rejected.json()["status"] == "rejected"
    reply = call("POST", "/apis/summarize", body=CALL, key=actors.other)
    assert (reply.status, reply.json()["code"]) == (403, "access_rejected")
    asked = call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    assert (asked.status, asked.json()["status"]) == (201, "pending")


def test_owner_can_withdraw_an_approval(actors: Actors) -> None:
    published(actors.owner)
    share_org(actors.owner)
    call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    call("PUT", "/apis/summarize/access-requests/beta", body={"status": "approved"}, key=actors.owner)
    call("PUT", "/apis/summarize/access-requests/beta", body={"status": "rejected"}, key=actors.owner)
    assert call("POST", "/apis/summarize", body=CALL, key=actors.other).status == 403


def test_making_an_api_private_again_revokes_listed_access(actors: Actors) -> None:
    published(actors.owner)
    share_org(actors.owner)
    call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    call("PUT", "/apis/summarize/access-requests/beta", body={"status": "approved"}, key=actors.owner)
    call("PUT", "/apis/summarize/sharing", body={"visibility": "private"}, key=actors.owner)
    assert call("POST", "/apis/summarize", body=CALL, key=actors.other).status == 404


@pytest.mark.parametrize(
    ("status", "team", "expected"),
    [("pending", "beta", 400), ("approved", "gamma", 404)],
)
def test_bad_decisions_are_refused(actors: Actors, status: str, team: str, expected: int) -> None:
    published(actors.owner)
    share_org(actors.owner)
    call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    reply = call("PUT", f"/apis/summarize/access-requests/{team}", body={"status": status}, key=actors.owner)
    assert reply.status == expected


def test_access_requests_only_for_listed_apis(actors: Actors) -> None:
    published(actors.owner)
    assert call("POST", "/apis/summarize/access-requests", body={}, key=actors.other).status == 404
    mine = call("POST", "/apis/summarize/access-requests", body={}, key=actors.owner)
    assert (mine.status, mine.json()["code"]) == (409, "access_exists")


def test_catalog_search_by_name_and_tag(actors: Actors) -> None:
    published(actors.owner)
    published(actors.owner, slug="translate", title="Translate", description="Any language", tags=["i18n"])
    share_org(actors.owner)
    share_org(actors.owner, "translate")
    create(actors.owner, slug="secret-draft", title="Secret", tags=["text"])
    assert _slugs(actors.other) == ["summarize", "translate"]
    assert _slugs(actors.other, "?q=TRANS") == ["translate"]
    assert _slugs(actors.other, "?q=language") == ["translate"]
    assert _slugs(actors.other, "?tag=text") == ["summarize"]
    assert _slugs(actors.owner, "?tag=text") == ["secret-draft", "summarize"]
    assert _slugs(actors.other, "?q=summ&tag=i18n") == []


def test_catalog_flags_state_for_the_owner_and_hides_retired_ones_from_nobody_it_listed(
    actors: Actors,
) -> None:
    published(actors.owner)
    share_org(actors.owner)
    move(actors.owner, "summarize", "deprecated")
    (entry,) = call("GET", "/catalog", key=actors.other).json()["data"]
    assert (entry["state"], entry["deprecated"]) == ("deprecated", True)
    move(actors.owner, "summarize", "retired")
    (entry,) = call("GET", "/catalog", key=actors.other).json()["data"]
    assert entry["state"] == "retired"


def test_show_api_reports_the_callers_relation(actors: Actors) -> None:
    published(actors.owner)
    share_org(actors.owner)
    mine = call("GET", "/apis/summarize", key=actors.owner).json()
    theirs = call("GET", "/apis/summarize", key=actors.other).json()
    assert (mine["access"], mine["manage"]) == ("owner", True)
    assert (theirs["access"], theirs["manage"]) == ("none", False)


def test_callers_do_not_learn_which_other_teams_share_an_api(actors: Actors) -> None:
    published(actors.owner)
    body = {"visibility": "shared", "shared_with": ["beta", "gamma"]}
    call("PUT", "/apis/summarize/sharing", body=body, key=actors.owner)
    assert "shared_with" not in call("GET", "/apis/summarize", key=actors.other).json()
    assert call("GET", "/apis/summarize", key=actors.owner).json()["shared_with"] == ["beta", "gamma"]
