"""A team's response-cache setting (``PUT /admin/teams/{team_id}/cache``): whether its calls are
cached, for how long, whether calls with ``temperature > 0`` may be, and per-key opt-ins and
opt-outs. Apart from :mod:`aigw.response_cache` so that the admin function, which only reads and
writes the setting, does not load the invocation path (cold start).

Item: ``TEAM#<team>`` / ``CACHE_SETTINGS``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aigw import clock
from aigw.table import gateway_table
from aigw.teams import team_pk
from aigw.warm_cache import WarmCache

MIN_TTL = 60
MAX_TTL = 7 * 86_400
DEFAULT_TTL = 3_600
_SETTINGS_SK = "CACHE_SETTINGS"
_SETTINGS_SECONDS = 10  # how long a container trusts its copy of a team's setting


class CacheSettings(BaseModel):
    """A team's cache setting, as an admin sets it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    ttl_seconds: int = Field(default=DEFAULT_TTL, ge=MIN_TTL, le=MAX_TTL)
    allow_temperature: bool = False
    # Per key: True opts a key in on a team that is not, False opts it out.
    keys: dict[str, bool] = Field(default_factory=dict, max_length=1000)


def _load(team_id: str) -> CacheSettings:
    item = gateway_table().get(team_pk(team_id), _SETTINGS_SK)
    return (
        CacheSettings.model_validate(item["settings"]) if item and item.get("settings") else CacheSettings()
    )


# Every call reads its team's setting: a container keeps a copy (aigw.warm_cache).
_cache: WarmCache[str, CacheSettings] = WarmCache(_load, lambda: _SETTINGS_SECONDS)


def settings_for(team_id: str) -> CacheSettings:
    return _cache.get(team_id)


def put_settings(team_id: str, settings: CacheSettings) -> CacheSettings:
    gateway_table().put(
        {
            "pk": team_pk(team_id),
            "sk": _SETTINGS_SK,
            "type": "cache_settings",
            "settings": settings.model_dump(),
            "updated_at": clock.now(),
        }
    )
    _cache.forget(team_id)
    return settings


def clear() -> None:
    _cache.clear()
