"""The life of a prompt API: draft -> published -> deprecated -> retired.

==============  ==============================  ==========================================
from            to                              what changes
==============  ==============================  ==========================================
draft           published                       a version goes live (default: the latest)
published       deprecated                      answers carry Deprecation/Sunset/successor
deprecated      published                       deprecation withdrawn
deprecated      retired                         answers are 410 Gone, for good
==============  ==============================  ==========================================

Anything else is refused with 409: an API is deprecated before it is retired, so its callers
always get a warning first, and retired is final. Promoting another version to live is not a
state change but is recorded in the same history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from aigw import clock
from aigw.errors import Conflict, Gone, InvalidRequest
from aigw.keys import ApiKey
from aigw.prompt_apis import access, design, store
from aigw.prompt_apis.model import PromptApi, State, Transition

ALLOWED: dict[State, frozenset[State]] = {
    "draft": frozenset({"published"}),
    "published": frozenset({"deprecated"}),
    "deprecated": frozenset({"published", "retired"}),
    "retired": frozenset(),
}
DEFAULT_SUNSET_SECONDS = 90 * 86_400


def _refuse(api: PromptApi, to: State) -> Conflict:
    allowed = sorted(ALLOWED[api.state])
    options = ", ".join(allowed) if allowed else "nothing (retired is final)"
    return Conflict(
        f"prompt API '{api.slug}' cannot go from {api.state} to {to}; "
        f"from {api.state} it can go to {options}",
        code="illegal_transition",
        param="to",
        extra={"state": api.state, "allowed": allowed},
    )


def _check_successor(key: ApiKey, api: PromptApi, successor: str | None) -> None:
    """The successor must be published or deprecated and visible to the caller; every other
    case (missing, a draft, retired, another team's private API) is the same 400."""
    if successor is None:
        return
    if successor == api.slug:
        raise InvalidRequest("an API cannot succeed itself", code="invalid_successor", param="successor")
    target = store.get(successor)
    if target is None or target.state in ("draft", "retired") or not access.can_see(key, target):
        raise InvalidRequest(
            f"successor '{successor}' must be a published or deprecated prompt API your team can see",
            code="invalid_successor",
            param="successor",
        )


def transition(
    key: ApiKey,
    slug: str,
    to: State,
    *,
    version: int | None = None,
    successor: str | None = None,
    sunset_at: int | None = None,
    reason: str | None = None,
) -> tuple[PromptApi, Transition]:
    api = access.require_manager(key, slug)
    if to not in ALLOWED[api.state]:
        raise _refuse(api, to)
    now = clock.now()
    changes: dict[str, object] = {"state": to}
    removes: tuple[str, ...] = ()
    live = api.live_version
    if to == "published":
        if api.state == "draft":
            live = version if version is not None else api.latest_version
            released = design.get_version(slug, live).design
            changes.update(live_version=live, title=released.title, description=released.description)
            changes["tags"] = list(released.tags)
        elif version is not None:
            raise InvalidRequest(
                "version applies when publishing a draft; use promote to change the live version",
                param="version",
            )
        removes = ("deprecated_at", "sunset_at", "successor") if api.state == "deprecated" else ()
    elif to == "deprecated":
        _check_successor(key, api, successor)
        sunset = sunset_at if sunset_at is not None else now + DEFAULT_SUNSET_SECONDS
        if sunset <= now:
            raise InvalidRequest("sunset must be in the future", param="sunset")
        changes.update(deprecated_at=now, sunset_at=sunset)
        if successor is not None:
            changes["successor"] = successor
    elif to == "retired":
        _check_successor(key, api, successor)
        if successor is not None:
            changes["successor"] = successor
    record = store.transition_record(api, key, _action(api.state, to), to, version=live, reason=reason)
    store.change_state(api, record, changes, removes=removes)
    return access.get_api(slug), record


def _action(from_state: State, to: State) -> str:
    if to == "published":
        return "reinstate" if from_state == "deprecated" else "publish"
    return {"deprecated": "deprecate", "retired": "retire"}[to]


def promote(key: ApiKey, slug: str, version: int, reason: str | None = None) -> tuple[PromptApi, Transition]:
    """Make another saved version the live one of a published (or deprecated) API."""
    api = access.require_manager(key, slug)
    if api.state not in ("published", "deprecated"):
        raise Conflict(
            f"prompt API '{slug}' is {api.state}: "
            + ("publish it to choose its live version" if api.state == "draft" else "retired is final"),
            code="illegal_transition",
        )
    design.get_version(slug, version)
    record = store.transition_record(api, key, "promote", api.state, version=version, reason=reason)
    store.change_state(api, record, {"live_version": version})
    return access.get_api(slug), record


def history(key: ApiKey, slug: str) -> list[Transition]:
    access.require_manager(key, slug)
    return store.history(slug)


def http_date(epoch: int) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC), usegmt=True)


def successor_link(successor: str) -> str:
    return f'</apis/{successor}>; rel="successor-version"'


def deprecation_headers(api: PromptApi) -> dict[str, str]:
    """RFC 9745 ``Deprecation`` (a structured-field date), RFC 8594 ``Sunset`` and a link to
    the successor; empty unless the API is deprecated."""
    if api.state != "deprecated" or api.deprecated_at is None:
        return {}
    headers = {"Deprecation": f"@{api.deprecated_at}"}
    if api.sunset_at is not None:
        headers["Sunset"] = http_date(api.sunset_at)
    links = [f'</apis/{api.slug}/openapi.json>; rel="deprecation"; type="application/json"']
    if api.successor:
        links.insert(0, successor_link(api.successor))
    headers["Link"] = ", ".join(links)
    return headers


def require_callable(api: PromptApi) -> None:
    """Retired APIs answer 410 Gone naming their successor."""
    if api.state != "retired":
        return
    detail = f"prompt API '{api.slug}' is retired"
    extra: dict[str, object] = {"slug": api.slug}
    headers: dict[str, str] = {}
    if api.successor:
        detail += f"; use its successor '{api.successor}' (POST /apis/{api.successor})"
        extra["successor"] = api.successor
        extra["successor_url"] = f"/apis/{api.successor}"
        headers["Link"] = successor_link(api.successor)
    raise Gone(detail, code="api_retired", extra=extra, headers=headers)
