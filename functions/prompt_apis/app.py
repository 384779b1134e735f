"""Prompt APIs: design, version, publish and share a model+prompt as ``POST /apis/{slug}``.

Every route needs an API key. The owner team's keys (and admin keys) manage an API; any
team with access calls it and is billed for it. Rules live in :mod:`aigw.prompt_apis`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aigw import clock, streaming, web
from aigw.errors import InvalidRequest
from aigw.prompt_apis import access, catalog, design, lifecycle, openapi, sharing, store, usage
from aigw.prompt_apis.model import (
    AccessRequest,
    Design,
    PromptApi,
    Slug,
    State,
    TeamId,
    Transition,
    Version,
    Visibility,
)

logger = Logger(service="aigw-prompt-apis")
app = web.resolver()

_SHARING_FIELDS = {"slug", "owner_team", "visibility", "shared_with"}


class CreateApi(Design):
    slug: Slug
    owner_team: TeamId | None = None
    visibility: Visibility = "private"
    shared_with: list[TeamId] = Field(default_factory=list, max_length=100)


class DryRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = Field(default_factory=dict)
    version: Annotated[int, Field(ge=1)] | None = None


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: State
    version: Annotated[int, Field(ge=1)] | None = None
    successor: Slug | None = None
    sunset: AwareDatetime | None = None
    reason: Annotated[str, Field(max_length=1000)] | None = None


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=1000)] | None = None


class Sharing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visibility: Visibility
    shared_with: list[TeamId] = Field(default_factory=list, max_length=100)


class AskAccess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=1000)] | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["approved", "rejected"]


def _api_view(api: PromptApi) -> dict[str, Any]:
    view = api.model_dump(exclude_none=True)
    for name in ("created_at", "updated_at", "deprecated_at", "sunset_at"):
        if name in view:
            view[name] = clock.iso(view[name])
    return {**view, "url": f"/apis/{api.slug}", "openapi_url": f"/apis/{api.slug}/openapi.json"}


def _version_view(version: Version) -> dict[str, Any]:
    return {
        **version.model_dump(exclude={"design"}),
        "created_at": clock.iso(version.created_at),
        "design": version.design.model_dump(by_alias=True, exclude_none=True),
    }


def _transition_view(transition: Transition) -> dict[str, Any]:
    return {**transition.model_dump(exclude_none=True), "at": clock.iso(transition.at)}


def _access_view(request: AccessRequest) -> dict[str, Any]:
    view = request.model_dump(exclude_none=True)
    for name in ("requested_at", "decided_at"):
        if name in view:
            view[name] = clock.iso(view[name])
    return view


@app.get("/catalog")
def list_catalog(
    q: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=40)] = None,
) -> Response[str]:
    found = catalog.entries(web.current_key(app), query=q, tag=tag)
    return web.json_response({"data": [e.model_dump() for e in found]})


@app.post("/apis")
def create_api(body: CreateApi) -> Response[str]:
    spec = Design.model_validate(body.model_dump(by_alias=True, exclude=_SHARING_FIELDS))
    api, first = design.create_api(
        web.current_key(app),
        body.slug,
        spec,
        owner_team=body.owner_team,
        visibility=body.visibility,
        shared_with=body.shared_with,
    )
    return web.json_response({**_api_view(api), "version": _version_view(first)}, status=201)


@app.get("/apis/<slug>")
def show_api(slug: str) -> Response[str]:
    key = web.current_key(app)
    api, rel = access.require_visible(key, slug)
    view = _api_view(api)
    manages = access.manages(key, api)
    if not manages:
        view.pop("shared_with", None)  # which other teams use it is the owner's business
    return web.json_response({**view, "access": rel, "manage": manages})


@app.post("/apis/<slug>")
def call_api(slug: str) -> Response[str]:
    # Calling (and dry-running) an API is the only use of the invocation path (metering,
    # providers, httpx) in this function: the catalog and design routes do not load it.
    from aigw.prompt_apis import invoke

    try:
        body = json.loads(app.current_event.body or "")
    except json.JSONDecodeError as exc:
        raise InvalidRequest("The request body is not valid JSON", code="invalid_json") from exc
    answer = invoke.call(web.current_key(app), slug, body, request_id=web.request_id(app))
    if isinstance(answer, invoke.StreamedAnswer):
        stream = streaming.event_stream(answer.events(), on_close=answer.close)
        stream.headers.update(answer.headers)
        return streaming.respond(stream)
    return web.json_response({**answer.body(), "model": answer.model}, headers=answer.headers)


@app.get("/apis/<slug>/versions")
def list_versions(slug: str) -> Response[str]:
    access.require_manager(web.current_key(app), slug)
    return web.json_response({"data": [_version_view(v) for v in store.list_versions(slug)]})


@app.post("/apis/<slug>/versions")
def save_version(slug: str, body: Design) -> Response[str]:
    version = design.save_version(web.current_key(app), slug, body)
    return web.json_response(_version_view(version), status=201)


@app.get("/apis/<slug>/versions/<number>")
def show_version(slug: str, number: int) -> Response[str]:
    access.require_manager(web.current_key(app), slug)
    return web.json_response(_version_view(design.get_version(slug, number)))


@app.post("/apis/<slug>/versions/<number>/promote")
def promote_version(slug: str, number: int, body: Promote) -> Response[str]:
    api, record = lifecycle.promote(web.current_key(app), slug, number, body.reason)
    return web.json_response({**_api_view(api), "transition": _transition_view(record)})


@app.post("/apis/<slug>/dry-run")
def dry_run(slug: str, body: DryRun) -> Response[str]:
    from aigw.prompt_apis import invoke

    answer = invoke.dry_run(
        web.current_key(app), slug, body.variables, version=body.version, request_id=web.request_id(app)
    )
    rendered = [m.model_dump(exclude_none=True) for m in answer.messages]
    return web.json_response({**answer.body(), "model": answer.model, "dry_run": True, "messages": rendered})


@app.post("/apis/<slug>/transitions")
def move(slug: str, body: Move) -> Response[str]:
    api, record = lifecycle.transition(
        web.current_key(app),
        slug,
        body.to,
        version=body.version,
        successor=body.successor,
        sunset_at=int(body.sunset.timestamp()) if body.sunset else None,
        reason=body.reason,
    )
    return web.json_response({**_api_view(api), "transition": _transition_view(record)})


@app.get("/apis/<slug>/transitions")
def list_transitions(slug: str) -> Response[str]:
    history = lifecycle.history(web.current_key(app), slug)
    return web.json_response({"data": [_transition_view(t) for t in history]})


@app.put("/apis/<slug>/sharing")
def set_sharing(slug: str, body: Sharing) -> Response[str]:
    api = sharing.set_sharing(web.current_key(app), slug, body.visibility, body.shared_with)
    return web.json_response(_api_view(api))


@app.post("/apis/<slug>/access-requests")
def ask_access(slug: str, body: AskAccess) -> Response[str]:
    request, created = sharing.request_access(web.current_key(app), slug, body.reason)
    return web.json_response(_access_view(request), status=201 if created else 200)


@app.get("/apis/<slug>/access-requests")
def list_access(slug: str) -> Response[str]:
    found = sharing.requests(web.current_key(app), slug)
    return web.json_response({"data": [_access_view(r) for r in found]})


@app.put("/apis/<slug>/access-requests/<team_id>")
def decide_access(slug: str, team_id: str, body: Decision) -> Response[str]:
    decided = sharing.decide(web.current_key(app), slug, team_id, body.status)
    return web.json_response(_access_view(decided))


@app.get("/apis/<slug>/openapi.json")
def openapi_document(slug: str, version: Annotated[int | None, Query(ge=1)] = None) -> Response[str]:
    key = web.current_key(app)
    api, _ = access.require_visible(key, slug)
    if version is not None and not access.manages(key, api):
        raise InvalidRequest(
            "only the owner may read the document of a version that is not live", param="version"
        )
    chosen = design.get_version(slug, version or api.effective_version)
    return web.json_response(openapi.document(api, chosen), headers=lifecycle.deprecation_headers(api))


@app.get("/apis/<slug>/usage")
def usage_report(slug: str, days: Annotated[int, Query(ge=1, le=usage.MAX_DAYS)] = 30) -> Response[str]:
    return web.json_response(usage.report(web.current_key(app), slug, days=days))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | streaming.StreamingResponse:
    return web.handle_streaming(app, event, context)
