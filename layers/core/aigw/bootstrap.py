"""The first admin key, written straight to the table (there is no admin yet to ask)."""

from __future__ import annotations

import contextlib

from aigw import keys, teams
from aigw.errors import Conflict

ADMIN_TEAM = "admin"


def bootstrap_admin(team_id: str = ADMIN_TEAM, *, name: str = "bootstrap") -> keys.IssuedKey:
    # A second bootstrap just adds another admin key.
    with contextlib.suppress(Conflict):
        teams.create_team(team_id, "Administrators")
    return keys.create_key(team_id, name=name, role="admin")
