"""Other teams' private prompt APIs cannot be discovered (issue 11, case 10), tried as an
attacker would: every route answers for an API the caller cannot see exactly as for one that
does not exist, a successor must be visible to the caller and is never shown to callers who
cannot see it, sharing does not tell whether a team exists, and creating a slug in use says
the same whoever holds it (slugs are global: docs/decisions/0017-prompt-api-names.md). On moto."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.apigw import Reply, call
from tests.helpers.prompt_apis import Actors, create, design, make_actors, move, published, share_org

CALL = {"text": "hello"}


@pytest.fixture
def actors() -> Actors:
    return make_actors()


def _version_body() -> dict[str, Any]:
    return {k: v for k, v in design().items() if k != "slug"}


ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/apis/{slug}", None),
    ("POST", "/apis/{slug}", CALL),
    ("POST", "/apis/{slug}/dry-run", {"variables": CALL}),
    ("GET", "/apis/{slug}/versions", None),
    ("POST", "/apis/{slug}/versions", _version_body()),
    ("GET", "/apis/{slug}/versions/1", None),
    ("POST", "/apis/{slug}/versions/1/promote", {}),
    ("POST", "/apis/{slug}/transitions", {"to": "deprecated"}),
    ("GET", "/apis/{slug}/transitions", None),
    ("PUT", "/apis/{slug}/sharing", {"visibility": "org"}),
    ("POST", "/apis/{slug}/access-requests", {}),
    ("GET", "/apis/{slug}/access-requests", None),
    ("PUT", "/apis/{slug}/access-requests/beta", {"status": "approved"}),
    ("GET", "/apis/{slug}/openapi.json", None),
    ("GET", "/apis/{slug}/usage", None),
]


def _seen(reply: Reply, slug: str) -> tuple[int, str]:
    return reply.status, reply.body.replace(slug, "<slug>")


def _hidden_apis(actors: Actors) -> list[str]:
    """acme's APIs that beta (actors.other) cannot see, in the ways an API can be hidden."""
    assert create(actors.owner, slug="private-draft").status == 201
    published(actors.owner, slug="private-live")
    published(actors.owner, slug="gamma-only")
    body = {"visibility": "shared", "shared_with": ["gamma"]}
    assert call("PUT", "/apis/gamma-only/sharing", body=body, key=actors.owner).status == 200
    assert create(actors.owner, slug="org-draft").status == 201  # listed, but still a draft
    share_org(actors.owner, "org-draft")
    return ["private-draft", "private-live", "gamma-only", "org-draft"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_answers_for_a_hidden_api_exactly_as_for_a_missing_one(
    actors: Actors, method: str, path: str, body: dict[str, Any] | None
) -> None:
    hidden = _hidden_apis(actors)
    missing = call(method, path.format(slug="no-such-api"), body=body, key=actors.other)
    assert missing.status in (400, 404), missing.body
    for slug in hidden:
        probe = call(method, path.format(slug=slug), body=body, key=actors.other)
        assert _seen(probe, slug) == _seen(missing, "no-such-api"), (slug, probe.body)


@pytest.mark.parametrize("to", ["deprecated", "retired"])
def test_a_hidden_successor_is_refused_exactly_like_a_missing_one(actors: Actors, to: str) -> None:
    hidden = _hidden_apis(actors)
    published(actors.other, slug="beta-api")
    if to == "retired":
        assert move(actors.other, "beta-api", "deprecated").status == 200
    missing = move(actors.other, "beta-api", to, successor="no-such-api")
    assert (missing.status, missing.json()["param"]) == (400, "successor")
    for slug in hidden:
        probe = move(actors.other, "beta-api", to, successor=slug)
        assert _seen(probe, slug) == _seen(missing, "no-such-api"), probe.body


def test_a_successor_the_caller_can_see_is_accepted(actors: Actors) -> None:
    published(actors.owner, slug="acme-v2")
    body = {"visibility": "shared", "shared_with": ["beta"]}
    assert call("PUT", "/apis/acme-v2/sharing", body=body, key=actors.owner).status == 200
    published(actors.other, slug="beta-api")
    assert move(actors.other, "beta-api", "deprecated", successor="acme-v2").status == 200


def test_callers_are_never_shown_a_successor_they_cannot_see(actors: Actors) -> None:
    """acme deprecates a shared API in favour of a successor beta may see, then makes the
    successor private: beta's answers, headers, catalog and OpenAPI document stop naming it."""
    published(actors.owner, slug="old-api")
    published(actors.owner, slug="new-api")
    for slug in ("old-api", "new-api"):
        body = {"visibility": "shared", "shared_with": ["beta"]}
        assert call("PUT", f"/apis/{slug}/sharing", body=body, key=actors.owner).status == 200
    assert move(actors.owner, "old-api", "deprecated", successor="new-api").status == 200
    assert "new-api" in (call("POST", "/apis/old-api", body=CALL, key=actors.other).header("Link") or "")

    assert (
        call("PUT", "/apis/new-api/sharing", body={"visibility": "private"}, key=actors.owner).status == 200
    )
    answer = call("POST", "/apis/old-api", body=CALL, key=actors.other)
    assert answer.status == 200
    assert answer.header("Deprecation") is not None  # still told it is deprecated...
    assert "new-api" not in str(answer.headers)  # ...but not what replaced it
    assert "new-api" not in call("GET", "/apis/old-api", key=actors.other).body
    assert "new-api" not in call("GET", "/apis/old-api/openapi.json", key=actors.other).body
    assert "new-api" not in call("GET", "/catalog", key=actors.other).body
    assert move(actors.owner, "old-api", "retired").status == 200
    gone = call("POST", "/apis/old-api", body=CALL, key=actors.other)
    assert gone.status == 410
    assert "new-api" not in gone.body + str(gone.headers)
    # The owner, who can see it, still is.
    assert "new-api" in call("POST", "/apis/old-api", body=CALL, key=actors.owner).body


def test_sharing_does_not_tell_a_member_whether_a_team_exists(actors: Actors) -> None:
    published(actors.owner)
    real = call(
        "PUT",
        "/apis/summarize/sharing",
        body={"visibility": "shared", "shared_with": ["beta"]},
        key=actors.owner,
    )
    ghost = call(
        "PUT",
        "/apis/summarize/sharing",
        body={"visibility": "shared", "shared_with": ["ghost-team"]},
        key=actors.owner,
    )
    assert (real.status, ghost.status) == (200, 200)
    assert ghost.json()["shared_with"] == ["ghost-team"]  # grants nothing: no such team
    admin = call(
        "PUT",
        "/apis/summarize/sharing",
        body={"visibility": "shared", "shared_with": ["ghost-team"]},
        key=actors.admin,
    )
    assert (admin.status, admin.json()["param"]) == (400, "shared_with")  # admins see every team


def test_a_slug_in_use_gets_the_same_answer_whoever_holds_it(actors: Actors) -> None:
    hidden = _hidden_apis(actors)
    published(actors.owner, slug="org-live")
    share_org(actors.owner, "org-live")
    published(actors.other, slug="beta-own")
    answers = {
        slug: _seen(create(actors.other, slug=slug), slug) for slug in [*hidden, "org-live", "beta-own"]
    }
    assert len(set(answers.values())) == 1, answers
    status, body = next(iter(answers.values()))
    assert status == 409
    assert "slug_unavailable" in body
    for word in ("acme", "private", "draft", "exists", "owner"):
        assert word not in body
