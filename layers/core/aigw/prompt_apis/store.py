"""The prompt APIs' DynamoDB access patterns, all in the single gateway table.

=====================  ====================  ==========================  =========================
item                   pk                    sk                          gsi1 (pk / sk)
=====================  ====================  ==========================  =========================
API record             ``API#<slug>``        ``META``                    ``APIS`` / ``<slug>``
version (immutable)    ``API#<slug>``        ``V#<000001>``
transition (history)   ``API#<slug>``        ``T#<epoch_ms>#<id>``
access request         ``API#<slug>``        ``ACCESS#<team>``           ``ACCESS#<team>`` / slug
=====================  ====================  ==========================  =========================

State changes are conditional on the state they start from and written in one transaction
with their history entry, so two racing transitions cannot both win and none goes unrecorded.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aigw import clock
from aigw.errors import Conflict, NotFound
from aigw.keys import ApiKey
from aigw.prompt_apis.model import AccessRequest, PromptApi, State, Transition, Version
from aigw.table import ConditionFailed, gateway_table, serialize
from aigw.teams import team_pk

META = "META"


def api_pk(slug: str) -> str:
    return f"API#{slug}"


def version_sk(version: int) -> str:
    return f"V#{version:06d}"


def access_sk(team_id: str) -> str:
    return f"ACCESS#{team_id}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _meta_item(api: PromptApi) -> dict[str, Any]:
    return {
        "pk": api_pk(api.slug),
        "sk": META,
        "type": "prompt_api",
        "gsi1pk": "APIS",
        "gsi1sk": api.slug,
        **api.model_dump(exclude_none=True),
        "tags": list(api.tags),
        "shared_with": list(api.shared_with),
    }


def _version_item(version: Version) -> dict[str, Any]:
    # The design is stored as JSON text: DynamoDB's number type cannot hold the floats a
    # JSON Schema or a temperature may contain, and the text round-trips exactly.
    return {
        "pk": api_pk(version.slug),
        "sk": version_sk(version.version),
        "type": "prompt_api_version",
        "slug": version.slug,
        "version": version.version,
        "design": version.design.model_dump_json(by_alias=True, exclude_none=True),
        "created_at": version.created_at,
        "created_by_team": version.created_by_team,
        "created_by_key": version.created_by_key,
    }


def _transition_put(transition: Transition) -> dict[str, Any]:
    sk = f"T#{clock.now_ms():014d}#{secrets.token_hex(4)}"
    item = {"pk": api_pk(transition.slug), "sk": sk, "type": "prompt_api_transition"}
    return {"Put": {"Item": serialize({**item, **transition.model_dump(exclude_none=True)})}}


def create(api: PromptApi, first: Version) -> None:
    operations: list[dict[str, Any]] = [
        {
            "ConditionCheck": {
                "Key": _key(team_pk(api.owner_team), META),
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
        {"Put": {"Item": serialize(_meta_item(api)), "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"Item": serialize(_version_item(first))}},
    ]
    try:
        gateway_table().transact(operations)
    except ConditionFailed as exc:
        if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
            raise NotFound(f"team '{api.owner_team}' does not exist", code="team_not_found") from exc
        # The same answer whoever holds the slug and whatever its state or visibility: a name
        # in use is all it says (docs/decisions/0017-prompt-api-names.md).
        raise Conflict(
            f"the slug '{api.slug}' is not available; slugs are unique across the gateway, choose another",
            code="slug_unavailable",
            param="slug",
        ) from exc


def get(slug: str) -> PromptApi | None:
    item = gateway_table().get(api_pk(slug), META, consistent=True)
    return PromptApi.from_item(item) if item else None


def list_all() -> list[PromptApi]:
    items = gateway_table().query("gsi1pk = :p", {":p": "APIS"}, index="gsi1")
    return [PromptApi.from_item(i) for i in items]


def add_version(api: PromptApi, version: Version, display: Mapping[str, Any] | None) -> None:
    """Append ``version``; ``display`` (title, description, tags) updates the record too."""
    sets = ["latest_version = :n", "updated_at = :now"]
    values: dict[str, Any] = {
        ":n": version.version,
        ":prev": api.latest_version,
        ":now": version.created_at,
        ":retired": "retired",
    }
    for name, value in (display or {}).items():
        sets.append(f"{name} = :{name}")
        values[f":{name}"] = value
    operations = [
        {
            "Update": {
                "Key": _key(api_pk(api.slug), META),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": "latest_version = :prev AND #state <> :retired",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": serialize(values),
            }
        },
        {
            "Put": {
                "Item": serialize(_version_item(version)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]
    try:
        gateway_table().transact(operations)
    except ConditionFailed as exc:
        raise Conflict(
            f"prompt API '{api.slug}' changed while saving (retired, or another version was saved "
            "at the same time); reload and retry",
            code="concurrent_change",
        ) from exc


def get_version(slug: str, version: int) -> Version | None:
    item = gateway_table().get(api_pk(slug), version_sk(version), consistent=True)
    return Version.from_item(item) if item else None


def list_versions(slug: str) -> list[Version]:
    items = gateway_table().query(
        "pk = :p AND begins_with(sk, :v)", {":p": api_pk(slug), ":v": "V#"}, consistent=True
    )
    return [Version.from_item(i) for i in items]


def change_state(
    api: PromptApi, transition: Transition, changes: Mapping[str, Any], *, removes: tuple[str, ...] = ()
) -> None:
    """Apply ``changes`` if the API is still in ``transition.from_state`` (and version)."""
    names = {"#state": "state"}
    values: dict[str, Any] = {":from": transition.from_state, ":now": transition.at}
    sets = ["updated_at = :now"]
    for name, value in changes.items():
        names[f"#{name}"] = name
        sets.append(f"#{name} = :{name}")
        values[f":{name}"] = value
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    condition = "#state = :from"
    if api.live_version is None:
        condition += " AND attribute_not_exists(live_version)"
    else:
        condition += " AND live_version = :live"
        values[":live"] = api.live_version
    operations = [
        {
            "Update": {
                "Key": _key(api_pk(api.slug), META),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialize(values),
            }
        },
        _transition_put(transition),
    ]
    try:
        gateway_table().transact(operations)
    except ConditionFailed as exc:
        raise Conflict(
            f"prompt API '{api.slug}' changed state meanwhile; reload and retry", code="concurrent_change"
        ) from exc


def history(slug: str) -> list[Transition]:
    items = gateway_table().query(
        "pk = :p AND begins_with(sk, :t)", {":p": api_pk(slug), ":t": "T#"}, consistent=True
    )
    return [Transition.from_item(i) for i in items]


def set_sharing(slug: str, visibility: str, shared_with: list[str], now: int) -> PromptApi:
    item = gateway_table().update(
        api_pk(slug),
        META,
        expression="SET visibility = :v, shared_with = :s, updated_at = :now",
        values={":v": visibility, ":s": shared_with, ":now": now},
        condition="attribute_exists(pk)",
        return_new=True,
    )
    assert item is not None
    return PromptApi.from_item(item)


def put_access(request: AccessRequest) -> None:
    item = {
        "pk": api_pk(request.slug),
        "sk": access_sk(request.team_id),
        "type": "prompt_api_access",
        "gsi1pk": f"ACCESS#{request.team_id}",
        "gsi1sk": request.slug,
        **request.model_dump(exclude_none=True),
    }
    gateway_table().put(item)


def get_access(slug: str, team_id: str) -> AccessRequest | None:
    item = gateway_table().get(api_pk(slug), access_sk(team_id), consistent=True)
    return AccessRequest.from_item(item) if item else None


def access_requests(slug: str) -> list[AccessRequest]:
    items = gateway_table().query(
        "pk = :p AND begins_with(sk, :a)", {":p": api_pk(slug), ":a": "ACCESS#"}, consistent=True
    )
    return [AccessRequest.from_item(i) for i in items]


def access_of_team(team_id: str) -> dict[str, AccessRequest]:
    items = gateway_table().query("gsi1pk = :p", {":p": f"ACCESS#{team_id}"}, index="gsi1")
    return {i["slug"]: AccessRequest.from_item(i) for i in items}


def actor(key: ApiKey) -> dict[str, str]:
    return {"by_team": key.team_id, "by_key": key.key_id}


def transition_record(
    api: PromptApi, key: ApiKey, action: str, to_state: State, *, version: int | None, reason: str | None
) -> Transition:
    return Transition(
        slug=api.slug,
        action=action,
        from_state=api.state,
        to_state=to_state,
        version=version,
        at=clock.now(),
        reason=reason,
        **actor(key),
    )
