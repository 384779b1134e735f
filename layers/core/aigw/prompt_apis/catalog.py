"""``GET /catalog``: the prompt APIs a caller may see, with search by name and tag."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from aigw.keys import ApiKey
from aigw.prompt_apis import access, store
from aigw.prompt_apis.model import PromptApi, State, Visibility


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    title: str
    description: str
    tags: list[str]
    owner_team: str
    state: State
    deprecated: bool
    successor: str | None = None
    sunset_at: int | None = None
    visibility: Visibility
    version: int | None
    access: access.Relation
    url: str
    openapi_url: str


def _matches(api: PromptApi, query: str | None, tag: str | None) -> bool:
    if tag is not None and tag.lower() not in api.tags:
        return False
    if not query:
        return True
    needle = query.lower()
    return any(needle in text.lower() for text in (api.slug, api.title, api.description))


def entries(key: ApiKey, *, query: str | None = None, tag: str | None = None) -> list[Entry]:
    requests = store.access_of_team(key.team_id)
    apis = {api.slug: api for api in store.list_all()}

    def seen(api: PromptApi) -> bool:
        return access.visible(key, api, access.relation(key, api, requests.get(api.slug)))

    found = []
    for api in apis.values():
        rel = access.relation(key, api, requests.get(api.slug))
        if not access.visible(key, api, rel) or not _matches(api, query, tag):
            continue
        # A successor the caller cannot see is not named (it would reveal a private API).
        successor = api.successor if api.successor in apis and seen(apis[api.successor]) else None
        found.append(
            Entry(
                slug=api.slug,
                title=api.title,
                description=api.description,
                tags=list(api.tags),
                owner_team=api.owner_team,
                state=api.state,
                deprecated=api.state == "deprecated",
                successor=successor,
                sunset_at=api.sunset_at,
                visibility=api.visibility,
                version=api.live_version,
                access=rel,
                url=f"/apis/{api.slug}",
                openapi_url=f"/apis/{api.slug}/openapi.json",
            )
        )
    return sorted(found, key=lambda e: e.slug)
