"""The lifecycle: every state, every legal and illegal transition, and what callers see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from aigw import clock
from tests.helpers.apigw import call
from tests.helpers.prompt_apis import Actors, create, design, make_actors, move, published, share_org

CALL = {"text": "hello"}


@pytest.fixture
def actors() -> Actors:
    return make_actors()


def _save(key: str, slug: str = "summarize", **changes: object) -> int:
    spec = design(**changes)
    del spec["slug"]
    reply = call("POST", f"/apis/{slug}/versions", body=spec, key=key)
    assert reply.status == 201, reply.body
    version: int = reply.json()["version"]
    return version


def test_draft_is_callable_by_its_owner_only(actors: Actors) -> None:
    create(actors.owner)
    share_org(actors.owner)
    mine = call("POST", "/apis/summarize", body=CALL, key=actors.owner)
    assert mine.status == 200
    assert mine.json()["version"] == 1
    # Listed for the organisation, but a draft is nobody else's business yet.
    theirs = call("POST", "/apis/summarize", body=CALL, key=actors.other)
    assert theirs.status == 404
    catalog = call("GET", "/catalog", key=actors.other).json()["data"]
    assert catalog == []


def test_publish_makes_a_version_live_and_later_saves_wait_for_promotion(actors: Actors) -> None:
    create(actors.owner)
    _save(actors.owner, prompt={"user": "second: {{text}}"})
    reply = move(actors.owner, "summarize", "published", version=1)
    assert reply.status == 200
    assert (reply.json()["state"], reply.json()["live_version"]) == ("published", 1)
    answer = call("POST", "/apis/summarize", body=CALL, key=actors.owner).json()
    assert (answer["output"], answer["version"]) == ("Echo: Summarise (): hello", 1)
    third = _save(actors.owner, prompt={"user": "third: {{text}}"})
    assert call("POST", "/apis/summarize", body=CALL, key=actors.owner).json()["version"] == 1
    promoted = call("POST", f"/apis/summarize/versions/{third}/promote", body={}, key=actors.owner)
    assert promoted.status == 200
    answer = call("POST", "/apis/summarize", body=CALL, key=actors.owner).json()
    assert (answer["output"], answer["version"]) == ("Echo: third: hello", 3)
    assert call("POST", "/apis/summarize/versions/9/promote", body={}, key=actors.owner).status == 404


def test_publish_defaults_to_the_latest_version(actors: Actors) -> None:
    create(actors.owner)
    _save(actors.owner)
    assert move(actors.owner, "summarize", "published").json()["live_version"] == 2


def test_deprecated_answers_carry_deprecation_sunset_and_successor(actors: Actors) -> None:
    published(actors.owner)
    published(actors.owner, slug="summarize-v2")
    sunset = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    reply = move(actors.owner, "summarize", "deprecated", successor="summarize-v2", sunset=sunset.isoformat())
    assert reply.status == 200, reply.body
    answer = call("POST", "/apis/summarize", body=CALL, key=actors.owner)
    assert answer.status == 200
    deprecation = answer.header("Deprecation")
    assert deprecation is not None
    assert deprecation.startswith("@")
    assert abs(int(deprecation[1:]) - clock.now()) < 60
    sunset_header = answer.header("Sunset")
    assert sunset_header is not None
    assert sunset_header.endswith("GMT")
    assert parsedate_to_datetime(sunset_header) == sunset
    assert '</apis/summarize-v2>; rel="successor-version"' in (answer.header("Link") or "")
    fresh = call("POST", "/apis/summarize-v2", body=CALL, key=actors.owner)
    assert fresh.header("Deprecation") is None
    assert fresh.header("Sunset") is None
    (entry,) = [
        e for e in call("GET", "/catalog", key=actors.owner).json()["data"] if e["slug"] == "summarize"
    ]
    assert (entry["deprecated"], entry["successor"]) == (True, "summarize-v2")


def test_deprecation_defaults_to_a_sunset_in_90_days(actors: Actors) -> None:
    published(actors.owner)
    move(actors.owner, "summarize", "deprecated")
    sunset = call("POST", "/apis/summarize", body=CALL, key=actors.owner).header("Sunset")
    assert sunset is not None
    days = (parsedate_to_datetime(sunset) - datetime.now(UTC)).days
    assert 89 <= days <= 90


def test_reinstating_withdraws_the_deprecation(actors: Actors) -> None:
    published(actors.owner)
    move(actors.owner, "summarize", "deprecated")
    assert move(actors.owner, "summarize", "published").status == 200
    answer = call("POST", "/apis/summarize", body=CALL, key=actors.owner)
    assert answer.header("Deprecation") is None
    assert "deprecated_at" not in call("GET", "/apis/summarize", key=actors.owner).json()


def test_retired_answers_410_naming_the_successor(actors: Actors) -> None:
    published(actors.owner)
    published(actors.owner, slug="summarize-v2")
    move(actors.owner, "summarize", "deprecated")
    assert move(actors.owner, "summarize", "retired", successor="summarize-v2").status == 200
    gone = call("POST", "/apis/summarize", body=CALL, key=actors.owner)
    assert gone.status == 410
    assert gone.header("Content-Type") == "application/problem+json"
    problem = gone.json()
    assert (problem["status"], problem["code"], problem["successor"]) == (410, "api_retired", "summarize-v2")
    assert "summarize-v2" in problem["detail"]
    assert gone.header("Link") == '</apis/summarize-v2>; rel="successor-version"'
    # A retired API takes no new versions and no dry runs.
    spec = design()
    del spec["slug"]
    assert call("POST", "/apis/summarize/versions", body=spec, key=actors.owner).status == 409
    assert call("POST", "/apis/summarize/dry-run", body={"variables": CALL}, key=actors.owner).status == 410


@pytest.mark.parametrize(
    ("path", "to"),
    [
        ([], "deprecated"),
        ([], "retired"),
        ([], "draft"),
        (["published"], "published"),
        (["published"], "retired"),
        (["published"], "draft"),
        (["published", "deprecated"], "deprecated"),
        (["published", "deprecated", "retired"], "published"),
        (["published", "deprecated", "retired"], "deprecated"),
        (["published", "deprecated", "retired"], "retired"),
    ],
)
def test_illegal_transitions_are_refused_with_409(actors: Actors, path: list[str], to: str) -> None:
    create(actors.owner)
    for state in path:
        assert move(actors.owner, "summarize", state).status == 200
    state_before = call("GET", "/apis/summarize", key=actors.owner).json()["state"]
    reply = move(actors.owner, "summarize", to)
    assert reply.status == 409
    problem = reply.json()
    assert problem["code"] == "illegal_transition"
    assert problem["state"] == state_before
    assert call("GET", "/apis/summarize", key=actors.owner).json()["state"] == state_before
    history = call("GET", "/apis/summarize/transitions", key=actors.owner).json()["data"]
    assert len(history) == len(path)


def test_every_transition_is_recorded_with_who_and_when(actors: Actors) -> None:
    create(actors.owner)
    move(actors.owner, "summarize", "published", reason="launch")
    move(actors.admin, "summarize", "deprecated")
    move(actors.owner, "summarize", "published")
    move(actors.owner, "summarize", "deprecated")
    move(actors.owner, "summarize", "retired")
    history = call("GET", "/apis/summarize/transitions", key=actors.owner).json()["data"]
    assert [(h["action"], h["from_state"], h["to_state"]) for h in history] == [
        ("publish", "draft", "published"),
        ("deprecate", "published", "deprecated"),
        ("reinstate", "deprecated", "published"),
        ("deprecate", "published", "deprecated"),
        ("retire", "deprecated", "retired"),
    ]
    assert [h["by_team"] for h in history] == ["acme", "admin", "acme", "acme", "acme"]
    assert all(h["by_key"].startswith("key_") for h in history)
    assert history[0]["reason"] == "launch"
    at = datetime.fromisoformat(history[0]["at"])
    assert at.tzinfo is not None
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60


@pytest.mark.parametrize(
    ("successor", "reason"), [("summarize", "itself"), ("nope", "missing"), ("draft-one", "a draft")]
)
def test_successor_must_be_a_live_api(actors: Actors, successor: str, reason: str) -> None:
    published(actors.owner)
    create(actors.owner, slug="draft-one")
    reply = move(actors.owner, "summarize", "deprecated", successor=successor)
    assert reply.status == 400, reason
    assert reply.json()["param"] == "successor"


def test_sunset_in_the_past_is_refused(actors: Actors) -> None:
    published(actors.owner)
    reply = move(actors.owner, "summarize", "deprecated", sunset="2020-01-01T00:00:00Z")
    assert (reply.status, reply.json()["param"]) == (400, "sunset")


def test_transition_body_is_validated(actors: Actors) -> None:
    create(actors.owner)
    reply = move(actors.owner, "summarize", "gone")
    assert (reply.status, reply.json()["param"]) == (400, "to")


def test_non_owner_with_access_cannot_transition(actors: Actors) -> None:
    published(actors.owner)
    share_org(actors.owner)
    reply = move(actors.other, "summarize", "deprecated")
    assert (reply.status, reply.json()["code"]) == (403, "not_api_owner")
