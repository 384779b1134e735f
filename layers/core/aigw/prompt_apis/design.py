"""Designing a prompt API: create it, save versions, read them back.

A design is checked as a whole before it is stored: the model must exist, the schemas must be
valid JSON Schema, and every placeholder in the prompt must be an input the schema declares
(a typo would otherwise render as an empty string forever).
"""

from __future__ import annotations

from aigw import clock
from aigw.catalog import catalog
from aigw.chat import ModelInfo
from aigw.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from aigw.keys import ApiKey
from aigw.prompt_apis import access, schemas, store
from aigw.prompt_apis.model import Design, PromptApi, Version, Visibility
from aigw.prompt_apis.rendering import prompt_placeholders

# The invocation body is the variables object itself; this key asks for streaming instead.
RESERVED_INPUTS = frozenset({"stream"})


def _check_model(name: str, param: str) -> ModelInfo:
    try:
        return catalog().resolve(name)
    except NotFound as exc:
        raise InvalidRequest(
            f"{param}: the model '{name}' does not exist; GET /v1/models lists them",
            code="model_not_found",
            param=param,
        ) from exc


def _check_output_limit(design: Design, model: ModelInfo) -> None:
    limit = design.sampling.max_tokens
    if limit is not None and limit > model.max_output_tokens:
        raise InvalidRequest(
            f"sampling.max_tokens is {limit}, above the {model.max_output_tokens} output tokens "
            f"model '{model.id}' can produce",
            code="max_tokens_too_large",
            param="sampling.max_tokens",
        )


def check_design(design: Design) -> None:
    """Refuse a design that could never run, naming the field (400)."""
    _check_output_limit(design, _check_model(design.model, "model"))
    if design.fallback_model is not None:
        # A smaller fallback is fine: its calls are capped at what it can produce.
        _check_model(design.fallback_model, "fallback_model")
    schema = design.input_schema
    schemas.check_schema(schema, param="input_schema")
    if schema.get("type") != "object":
        raise InvalidRequest(
            'input_schema must describe an object ("type": "object"): the body is a JSON object',
            code="invalid_schema",
            param="input_schema.type",
        )
    declared = schema.get("properties") or {}
    if not isinstance(declared, dict):
        raise InvalidRequest("input_schema.properties must be an object", param="input_schema.properties")
    reserved = RESERVED_INPUTS & set(declared)
    if reserved:
        name = sorted(reserved)[0]
        raise InvalidRequest(
            f"input_schema may not declare '{name}': it is reserved for the call itself",
            code="reserved_input",
            param=f"input_schema.properties.{name}",
        )
    for name in prompt_placeholders(design.prompt):
        if name not in declared:
            raise InvalidRequest(
                f"The prompt uses {{{{{name}}}}} but input_schema.properties does not declare '{name}'",
                code="undeclared_variable",
                param="prompt",
            )
    if design.output.mode == "json":
        if design.output.json_schema is None:
            raise InvalidRequest(
                'output.schema is required when output.mode is "json"',
                code="invalid_schema",
                param="output.schema",
            )
        schemas.check_schema(design.output.json_schema, param="output.schema")
    elif design.output.json_schema is not None:
        raise InvalidRequest(
            'output.schema only applies when output.mode is "json"',
            code="invalid_schema",
            param="output.schema",
        )


def _display(design: Design) -> dict[str, object]:
    return {"title": design.title, "description": design.description, "tags": list(design.tags)}


def create_api(
    key: ApiKey,
    slug: str,
    design: Design,
    *,
    owner_team: str | None = None,
    visibility: Visibility = "private",
    shared_with: list[str] | None = None,
) -> tuple[PromptApi, Version]:
    """A new API in state ``draft`` with version 1, owned by the caller's team."""
    owner = owner_team or key.team_id
    if owner != key.team_id and not key.is_admin:
        raise PermissionDenied("Only admin keys may create a prompt API for another team", param="owner_team")
    check_design(design)
    now = clock.now()
    api = PromptApi(
        slug=slug,
        owner_team=owner,
        state="draft",
        visibility=visibility,
        shared_with=tuple(sorted(set(shared_with or ()))),
        latest_version=1,
        created_at=now,
        updated_at=now,
        title=design.title,
        description=design.description,
        tags=tuple(design.tags),
    )
    first = Version(
        slug=slug,
        version=1,
        design=design,
        created_at=now,
        created_by_team=key.team_id,
        created_by_key=key.key_id,
    )
    store.create(api, first)
    return api, first


def save_version(key: ApiKey, slug: str, design: Design) -> Version:
    """Append an immutable version. It goes live when published or promoted, not before."""
    api = access.require_manager(key, slug)
    if api.state == "retired":
        raise Conflict(f"prompt API '{slug}' is retired; it takes no new versions", code="api_retired")
    check_design(design)
    version = Version(
        slug=slug,
        version=api.latest_version + 1,
        design=design,
        created_at=clock.now(),
        created_by_team=key.team_id,
        created_by_key=key.key_id,
    )
    # Until something is live, the catalog shows the newest draft's title and tags.
    store.add_version(api, version, _display(design) if api.live_version is None else None)
    return version


def get_version(slug: str, number: int) -> Version:
    version = store.get_version(slug, number)
    if version is None:
        raise NotFound(
            f"prompt API '{slug}' has no version {number}", code="version_not_found", param="version"
        )
    return version
