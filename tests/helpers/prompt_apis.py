"""Designs and actors shared by the prompt API tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from aigw import keys, teams
from tests.helpers.apigw import Reply, call

SUMMARIZE: dict[str, Any] = {
    "slug": "summarize",
    "title": "Summarize",
    "description": "Summarises a text in a given style",
    "tags": ["text", "nlp"],
    "model": "mock/echo",
    "prompt": {"system": "You summarise texts.", "user": "Summarise ({{style}}): {{text}}"},
    "input_schema": {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "style": {"type": "string", "enum": ["short", "long"]},
            "options": {"type": "object", "properties": {"words": {"type": "integer", "minimum": 1}}},
        },
        "required": ["text"],
        "additionalProperties": False,
    },
    "sampling": {"temperature": 0.2, "max_tokens": 200},
}


def design(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SUMMARIZE)
    spec.update(changes)
    return spec


@dataclass(frozen=True)
class Actors:
    owner: str  # a member key of team "acme", which owns the APIs
    other: str  # a member key of team "beta"
    third: str  # a member key of team "gamma"
    admin: str


def make_actors() -> Actors:
    for team in ("acme", "beta", "gamma"):
        teams.create_team(team)
    teams.create_team("admin")
    return Actors(
        owner=keys.create_key("acme", name="owner").secret,
        other=keys.create_key("beta", name="other").secret,
        third=keys.create_key("gamma", name="third").secret,
        admin=keys.create_key("admin", name="admin", role="admin").secret,
    )


def create(key: str, **changes: Any) -> Reply:
    return call("POST", "/apis", body=design(**changes), key=key)


def move(key: str, slug: str, to: str, **extra: Any) -> Reply:
    return call("POST", f"/apis/{slug}/transitions", body={"to": to, **extra}, key=key)


def published(key: str, slug: str = "summarize", **changes: Any) -> None:
    assert create(key, slug=slug, **changes).status == 201
    assert move(key, slug, "published").status == 200


def share_org(key: str, slug: str = "summarize") -> None:
    reply = call("PUT", f"/apis/{slug}/sharing", body={"visibility": "org"}, key=key)
    assert reply.status == 200, reply.body
