"""Teams: the unit that owns keys, usage and (later) a subscription."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from aigw import clock
from aigw.errors import Conflict, InvalidRequest, NotFound
from aigw.table import ConditionFailed, Item, gateway_table

TEAM_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
_TEAM_ID = re.compile(TEAM_ID_PATTERN)


class Team(BaseModel):
    model_config = ConfigDict(frozen=True)

    team_id: str
    name: str
    created_at: int

    @classmethod
    def from_item(cls, item: Item) -> Team:
        return cls(team_id=item["team_id"], name=item["name"], created_at=int(item["created_at"]))


def team_pk(team_id: str) -> str:
    return f"TEAM#{team_id}"


def create_team(team_id: str, name: str | None = None) -> Team:
    if not _TEAM_ID.match(team_id):
        raise InvalidRequest(
            "team_id must be 2-63 characters of lowercase letters, digits and dashes", param="team_id"
        )
    team = Team(team_id=team_id, name=name or team_id, created_at=clock.now())
    item: dict[str, Any] = {
        "pk": team_pk(team_id),
        "sk": "META",
        "type": "team",
        "gsi1pk": "TEAMS",
        "gsi1sk": f"{team.created_at:012d}#{team_id}",
        **team.model_dump(),
    }
    try:
        gateway_table().put(item, condition="attribute_not_exists(pk)")
    except ConditionFailed as exc:
        raise Conflict(f"team '{team_id}' already exists", code="team_exists", param="team_id") from exc
    return team


def get_team(team_id: str) -> Team:
    item = gateway_table().get(team_pk(team_id), "META", consistent=True)
    if item is None:
        raise NotFound(f"team '{team_id}' does not exist", code="team_not_found")
    return Team.from_item(item)


def list_teams(limit: int | None = 1000) -> list[Team]:
    items = gateway_table().query("gsi1pk = :p", {":p": "TEAMS"}, index="gsi1", limit=limit, forward=True)
    return [Team.from_item(i) for i in items]
