"""Who may see, call and manage a prompt API.

* The owner team (any of its keys) and admin keys manage an API and see it in every state.
* ``private``: nobody else sees it. ``shared``: the named teams see and call it.
  ``org``: every team sees it in the catalog and may call it once the owner approved its
  access request.
* A draft is the owner's alone; a retired API answers 410 to everyone who could see it.

An API a caller may not see answers 404, exactly like one that does not exist, so slugs of
private APIs do not leak; nor does a successor the caller cannot see (it is left out of what
the caller is shown, and naming one when deprecating is refused like naming a missing API).
Slugs are global, though: see ``docs/decisions/0017-prompt-api-names.md`` for what creating
an API can and cannot tell about names held by others.
"""

from __future__ import annotations

from typing import Literal

from aigw.errors import NotFound, PermissionDenied
from aigw.keys import ApiKey
from aigw.prompt_apis import store
from aigw.prompt_apis.model import AccessRequest, PromptApi

Relation = Literal["owner", "shared", "approved", "pending", "rejected", "none"]


def not_found(slug: str) -> NotFound:
    return NotFound(f"No prompt API '{slug}' (or it is not visible to your team)", code="api_not_found")


def get_api(slug: str) -> PromptApi:
    api = store.get(slug)
    if api is None:
        raise not_found(slug)
    return api


def manages(key: ApiKey, api: PromptApi) -> bool:
    return key.is_admin or key.team_id == api.owner_team


def relation(key: ApiKey, api: PromptApi, request: AccessRequest | None) -> Relation:
    """What the caller's team is to the API, for calling it (admin rights are separate)."""
    if key.team_id == api.owner_team:
        return "owner"
    if api.visibility == "shared" and key.team_id in api.shared_with:
        return "shared"
    if api.visibility == "org" and request is not None:
        return request.status
    return "none"


def visible(key: ApiKey, api: PromptApi, rel: Relation) -> bool:
    if key.is_admin or rel == "owner":
        return True
    if api.state == "draft":
        return False
    return api.visibility == "org" or rel == "shared"


def _relation_of(key: ApiKey, api: PromptApi) -> Relation:
    needs_request = api.visibility == "org" and key.team_id != api.owner_team
    return relation(key, api, store.get_access(api.slug, key.team_id) if needs_request else None)


def can_see(key: ApiKey, api: PromptApi) -> bool:
    return visible(key, api, _relation_of(key, api))


def seen_by(key: ApiKey, api: PromptApi) -> PromptApi:
    """``api`` as ``key`` is shown it: a successor the caller cannot see is left out, so a
    deprecation notice never names another team's private API."""
    if api.successor is None:
        return api
    target = store.get(api.successor)
    if target is not None and can_see(key, target):
        return api
    return api.model_copy(update={"successor": None})


def require_manager(key: ApiKey, slug: str) -> PromptApi:
    """The API, if ``key`` may change it; 404 if it may not even see it, else 403."""
    api = get_api(slug)
    if manages(key, api):
        return api
    if not visible(key, api, _relation_of(key, api)):
        raise not_found(slug)
    raise PermissionDenied(
        f"Only team '{api.owner_team}' (the owner) or an admin may manage prompt API '{slug}'",
        code="not_api_owner",
    )


def require_visible(key: ApiKey, slug: str) -> tuple[PromptApi, Relation]:
    """The API as the caller is shown it (:func:`seen_by`), and what the caller is to it."""
    api = get_api(slug)
    rel = _relation_of(key, api)
    if not visible(key, api, rel):
        raise not_found(slug)
    return seen_by(key, api), rel


def require_caller(key: ApiKey, slug: str) -> PromptApi:
    """The API if ``key``'s team may call it; its state (410 and so on) is checked after."""
    api, rel = require_visible(key, slug)
    if rel in ("owner", "shared", "approved"):
        return api
    if rel == "pending":
        raise PermissionDenied(
            f"Your team's access request to prompt API '{slug}' awaits approval by team '{api.owner_team}'",
            code="access_pending",
        )
    if rel == "rejected":
        raise PermissionDenied(
            f"Team '{api.owner_team}' rejected your team's access to prompt API '{slug}'",
            code="access_rejected",
        )
    raise PermissionDenied(
        f"Your team has no access to prompt API '{slug}': request it with "
        f"POST /apis/{slug}/access-requests (team '{api.owner_team}' approves)",
        code="access_required",
    )
