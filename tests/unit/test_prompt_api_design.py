"""Designing prompt APIs: creation, validation of designs, immutable versions, dry runs."""

from __future__ import annotations

from typing import Any

import pytest

from aigw import clock
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.prompt_apis import Actors, create, design, make_actors, move


@pytest.fixture
def actors() -> Actors:
    return make_actors()


def test_create_makes_a_draft_owned_by_the_callers_team(actors: Actors) -> None:
    reply = create(actors.owner)
    assert reply.status == 201
    body = reply.json()
    assert (body["slug"], body["owner_team"], body["state"]) == ("summarize", "acme", "draft")
    assert body["latest_version"] == 1
    assert "live_version" not in body
    assert body["version"]["design"]["prompt"]["user"] == "Summarise ({{style}}): {{text}}"
    assert body["version"]["created_by_team"] == "acme"


def test_slugs_are_unique_across_the_gateway(actors: Actors) -> None:
    assert create(actors.owner).status == 201
    again = create(actors.other)
    assert again.status == 409
    assert again.json()["code"] == "slug_unavailable"
    assert again.header("Content-Type") == "application/problem+json"


def test_only_admins_create_for_another_team(actors: Actors) -> None:
    refused = call("POST", "/apis", body=design(owner_team="beta"), key=actors.owner)
    assert refused.status == 403
    made = call("POST", "/apis", body=design(owner_team="beta"), key=actors.admin)
    assert made.status == 201
    assert made.json()["owner_team"] == "beta"
    missing = call("POST", "/apis", body=design(slug="other", owner_team="nobody"), key=actors.admin)
    assert missing.status == 404


@pytest.mark.parametrize(
    ("changes", "param", "code"),
    [
        ({"slug": "Bad Slug"}, "slug", "invalid_request"),
        ({"model": "nope/model"}, "model", "model_not_found"),
        ({"fallback_model": "nope/model"}, "fallback_model", "model_not_found"),
        ({"prompt": {"user": "Hello {{who}}"}}, "prompt", "undeclared_variable"),
        ({"prompt": {}}, "prompt.user", "invalid_request"),
        (
            {"input_schema": {"type": "object", "properties": {"x": {"type": "strin"}}}},
            "input_schema",
            "invalid_schema",
        ),
        ({"input_schema": {"type": "array"}}, "input_schema.type", "invalid_schema"),
        (
            {"input_schema": {"type": "object", "properties": {"stream": {"type": "boolean"}}}},
            "input_schema.properties.stream",
            "reserved_input",
        ),
        ({"output": {"mode": "json"}}, "output.schema", "invalid_schema"),
        ({"output": {"mode": "json", "schema": {"type": 3}}}, "output.schema", "invalid_schema"),
        ({"output": {"mode": "text", "schema": {"type": "string"}}}, "output.schema", "invalid_schema"),
        ({"sampling": {"temperature": 7}}, "sampling.temperature", "invalid_request"),
        ({"unknown": 1}, "unknown", "invalid_request"),
    ],
)
def test_broken_designs_are_refused_naming_the_field(
    actors: Actors, changes: dict[str, Any], param: str, code: str
) -> None:
    reply = create(actors.owner, **changes)
    assert reply.status == 400, reply.body
    problem = reply.json()
    assert (problem["param"], problem["code"]) == (param, code)


def test_every_save_is_a_new_immutable_version(actors: Actors) -> None:
    create(actors.owner)
    second = call(
        "POST", "/apis/summarize/versions", body=design(title="Summarize v2", slug=None), key=actors.owner
    )
    assert second.status == 400  # slug is not part of a version's design
    spec = design(title="Summarize v2")
    del spec["slug"]
    saved = call("POST", "/apis/summarize/versions", body=spec, key=actors.owner)
    assert saved.status == 201
    assert saved.json()["version"] == 2
    versions = call("GET", "/apis/summarize/versions", key=actors.owner).json()["data"]
    assert [(v["version"], v["design"]["title"]) for v in versions] == [(1, "Summarize"), (2, "Summarize v2")]
    first = call("GET", "/apis/summarize/versions/1", key=actors.owner).json()
    assert first["design"]["title"] == "Summarize"
    assert call("GET", "/apis/summarize/versions/9", key=actors.owner).status == 404


def test_other_teams_cannot_see_or_change_a_private_api(actors: Actors) -> None:
    create(actors.owner)
    spec = design()
    del spec["slug"]
    for method, path, body in [
        ("POST", "/apis/summarize/versions", spec),
        ("GET", "/apis/summarize/versions", None),
        ("GET", "/apis/summarize", None),
        ("POST", "/apis/summarize/transitions", {"to": "published"}),
    ]:
        reply = call(method, path, body=body, key=actors.other)
        assert reply.status == 404, (method, path)
        assert reply.json()["code"] == "api_not_found"


def test_admins_manage_any_api(actors: Actors) -> None:
    create(actors.owner)
    assert move(actors.admin, "summarize", "published").status == 200
    history = call("GET", "/apis/summarize/transitions", key=actors.owner).json()["data"]
    assert history[0]["by_team"] == "admin"


def test_dry_run_tries_a_version_and_shows_the_rendered_prompt(actors: Actors) -> None:
    create(actors.owner)
    spec = design(prompt={"user": "v2 says: {{text}}"})
    del spec["slug"]
    call("POST", "/apis/summarize/versions", body=spec, key=actors.owner)
    latest = call("POST", "/apis/summarize/dry-run", body={"variables": {"text": "hi"}}, key=actors.owner)
    assert latest.status == 200
    body = latest.json()
    assert (body["output"], body["version"], body["dry_run"]) == ("Echo: v2 says: hi", 2, True)
    assert body["messages"] == [{"role": "user", "content": "v2 says: hi"}]
    first = call(
        "POST", "/apis/summarize/dry-run", body={"variables": {"text": "hi"}, "version": 1}, key=actors.owner
    ).json()
    assert first["output"] == "Echo: Summarise (): hi"
    assert first["messages"][0] == {"role": "system", "content": "You summarise texts."}
    # A dry run is a real call: metered and billed to the owner's team under its own route.
    records = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert {r.route for r in records} == {"/apis/summarize/dry-run"}
    assert all(r.cost_micro_usd > 0 for r in records)
    bad = call("POST", "/apis/summarize/dry-run", body={"variables": {"text": 3}}, key=actors.owner)
    assert (bad.status, bad.json()["param"]) == (400, "text")


def test_dry_run_is_for_managers_only(actors: Actors) -> None:
    create(actors.owner)
    move(actors.owner, "summarize", "published")
    call("PUT", "/apis/summarize/sharing", body={"visibility": "org"}, key=actors.owner)
    reply = call("POST", "/apis/summarize/dry-run", body={"variables": {"text": "x"}}, key=actors.other)
    assert reply.status == 403
    assert reply.json()["code"] == "not_api_owner"
