"""What a prompt API is: its design (one immutable version), its record, its history.

The design is versioned; the record (state, live version, sharing) is not. Every field a
caller sends is parsed here, at the edge, so the rest of the package trusts its input.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigw.table import Item

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
_SLUG = re.compile(SLUG_PATTERN)

State = Literal["draft", "published", "deprecated", "retired"]
Visibility = Literal["private", "shared", "org"]
OutputMode = Literal["text", "json"]
AccessStatus = Literal["pending", "approved", "rejected"]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
TeamId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Tag = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


def is_slug(value: str) -> bool:
    return bool(_SLUG.match(value))


class Prompt(BaseModel):
    """Chat messages with ``{{variable}}`` placeholders; ``system`` is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Annotated[str, Field(max_length=100_000)] | None = None
    user: Annotated[str, Field(min_length=1, max_length=100_000)]


class Sampling(BaseModel):
    """The sampling parameters a version pins; the caller cannot change them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    stop: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(default=None, max_length=4)
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None


class Output(BaseModel):
    """``text``: the model's answer as a string. ``json``: parsed and validated against
    ``json_schema``; a broken answer is retried ``retries`` times, then refused (502)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    mode: OutputMode = "text"
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    retries: Annotated[int, Field(ge=0, le=3)] = 1


class Design(BaseModel):
    """One version of a prompt API as its owner writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5_000)] = ""
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    model: Annotated[str, Field(min_length=1, max_length=256)]
    fallback_model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    prompt: Prompt
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    output: Output = Field(default_factory=Output)
    sampling: Sampling = Field(default_factory=Sampling)

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))


class Version(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    version: int
    design: Design
    created_at: int
    created_by_team: str
    created_by_key: str

    @classmethod
    def from_item(cls, item: Item) -> Version:
        return cls(
            slug=item["slug"],
            version=int(item["version"]),
            design=Design.model_validate_json(item["design"]),
            created_at=int(item["created_at"]),
            created_by_team=item["created_by_team"],
            created_by_key=item["created_by_key"],
        )


class PromptApi(BaseModel):
    """The record of one API: who owns it, where it is in its life, who may use it."""

    model_config = ConfigDict(frozen=True)

    slug: str
    owner_team: str
    state: State
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    visibility: Visibility = "private"
    shared_with: tuple[str, ...] = ()
    latest_version: int
    live_version: int | None = None
    successor: str | None = None
    deprecated_at: int | None = None
    sunset_at: int | None = None
    created_at: int
    updated_at: int

    @classmethod
    def from_item(cls, item: Item) -> PromptApi:
        fields = {k: item[k] for k in cls.model_fields if k in item}
        for name in ("tags", "shared_with"):
            fields[name] = tuple(sorted(fields.get(name) or ()))
        return cls.model_validate(fields)

    @property
    def effective_version(self) -> int:
        """The version calls run: the live one, or, while still a draft, the latest."""
        return self.live_version if self.live_version is not None else self.latest_version


class Transition(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    action: str
    from_state: State
    to_state: State
    version: int | None = None
    at: int
    by_team: str
    by_key: str
    reason: str | None = None

    @classmethod
    def from_item(cls, item: Item) -> Transition:
        return cls.model_validate({k: item[k] for k in cls.model_fields if k in item})


class AccessRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    team_id: str
    status: AccessStatus
    reason: str | None = None
    requested_at: int
    requested_by_key: str
    decided_at: int | None = None
    decided_by_team: str | None = None

    @classmethod
    def from_item(cls, item: Item) -> AccessRequest:
        return cls.model_validate({k: item[k] for k in cls.model_fields if k in item})
