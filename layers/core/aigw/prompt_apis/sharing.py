"""Sharing: visibility settings, access requests and the owner's decisions."""

from __future__ import annotations

from aigw import clock, teams
from aigw.errors import Conflict, InvalidRequest, NotFound
from aigw.keys import ApiKey
from aigw.prompt_apis import access, store
from aigw.prompt_apis.model import AccessRequest, AccessStatus, PromptApi, Visibility


def set_sharing(key: ApiKey, slug: str, visibility: Visibility, shared_with: list[str]) -> PromptApi:
    api = access.require_manager(key, slug)
    named = sorted(set(shared_with) - {api.owner_team})
    if visibility != "shared" and named:
        raise InvalidRequest('shared_with applies only to visibility "shared"', param="shared_with")
    if visibility == "shared" and not named:
        raise InvalidRequest(
            'visibility "shared" needs at least one team in shared_with', param="shared_with"
        )
    if key.is_admin:
        # Admins see every team, so they are told about a typo. Anyone else is not: whether a
        # team exists is not theirs to learn, and sharing with a name no team has grants nothing.
        for team_id in named:
            try:
                teams.get_team(team_id)
            except NotFound as exc:
                raise InvalidRequest(f"team '{team_id}' does not exist", param="shared_with") from exc
    return store.set_sharing(slug, visibility, named, clock.now())


def request_access(key: ApiKey, slug: str, reason: str | None = None) -> tuple[AccessRequest, bool]:
    """Ask the owner for access to an org-listed API; ``(request, created)``. Asking again
    while pending or approved changes nothing; after a rejection it asks anew."""
    api, rel = access.require_visible(key, slug)
    if rel in ("owner", "shared"):
        raise Conflict(f"your team already has access to prompt API '{slug}'", code="access_exists")
    if api.visibility != "org":
        raise Conflict(f"prompt API '{slug}' is not listed for the organisation", code="not_listed")
    if api.state == "retired":
        raise Conflict(f"prompt API '{slug}' is retired", code="api_retired")
    existing = store.get_access(slug, key.team_id)
    if existing is not None and existing.status in ("pending", "approved"):
        return existing, False
    request = AccessRequest(
        slug=slug,
        team_id=key.team_id,
        status="pending",
        reason=reason,
        requested_at=clock.now(),
        requested_by_key=key.key_id,
    )
    store.put_access(request)
    return request, True


def decide(key: ApiKey, slug: str, team_id: str, status: AccessStatus) -> AccessRequest:
    """The owner approves or rejects a team's request (or withdraws an approval)."""
    access.require_manager(key, slug)
    if status == "pending":
        raise InvalidRequest('decide with "approved" or "rejected"', param="status")
    existing = store.get_access(slug, team_id)
    if existing is None:
        raise NotFound(
            f"team '{team_id}' has not requested access to '{slug}'", code="access_request_not_found"
        )
    decided = existing.model_copy(
        update={"status": status, "decided_at": clock.now(), "decided_by_team": key.team_id}
    )
    store.put_access(decided)
    return decided


def requests(key: ApiKey, slug: str) -> list[AccessRequest]:
    access.require_manager(key, slug)
    return store.access_requests(slug)
