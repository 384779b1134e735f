"""The unified request and response: OpenAI chat completions, as pydantic models, and the
catalog's description of a model (:class:`ModelInfo`), which the vendor adapters receive.

Unknown request fields are kept (``extra="allow"``) so OpenAI-compatible upstreams receive
parameters this gateway does not know yet; adapters for other vendors translate the ones
they support and ignore the rest.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from aigw.errors import InvalidRequest

# OpenAI's seed is a 64-bit integer; larger numbers are refused here rather than by a vendor.
_INT64 = 2**63

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text, joining text parts of multi-part content."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    # Bounded by the model's own output limit (ModelInfo.check_output_limit), not here.
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-_INT64, lt=_INT64)
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    # Other tiers (priority, flex, scale) are priced differently from the catalog's prices, which
    # are what a call is metered at.
    service_tier: Literal["auto", "default"] | None = None

    @property
    def output_limit(self) -> int | None:
        """The most output tokens the caller allows: the smaller of the two fields it may use."""
        given = [n for n in (self.max_completion_tokens, self.max_tokens) if n is not None]
        return min(given) if given else None

    @property
    def output_limit_param(self) -> str:
        """The field the caller set its output limit in, to name it in errors."""
        if self.max_completion_tokens is not None and self.max_completion_tokens == self.output_limit:
            return "max_completion_tokens"
        return "max_tokens"

    def with_output_limit(self, tokens: int) -> ChatRequest:
        """This request with exactly ``tokens`` as its output limit, in one field: the limit a
        call was admitted (and reserved) with is the one every adapter sends upstream."""
        return self.model_copy(update={"max_completion_tokens": tokens, "max_tokens": None})


class ModelInfo(BaseModel):
    """One model of the catalog (:mod:`aigw.catalog`): where it runs, what it may produce, what
    it costs (USD per 1M tokens)."""

    model_config = ConfigDict(frozen=True)

    id: str
    provider: str
    upstream: str
    context_window: int
    # The most tokens the vendor generates in one answer (its documented output limit).
    max_output_tokens: int
    input_per_mtok: Decimal
    cached_input_per_mtok: Decimal
    output_per_mtok: Decimal
    created: int = 0
    fallbacks: tuple[str, ...] = ()
    # "chat" models answer /v1/chat/completions, /v1/messages and /v1/responses; "embedding"
    # models answer /v1/embeddings (their output price is zero, ``max_output_tokens`` unused).
    mode: Literal["chat", "embedding"] = "chat"
    # Embedding models: the vector size they answer by default, and whether a caller may ask
    # for fewer (``dimensions``) and at least how many.
    dimensions: int | None = None
    min_dimensions: int | None = None

    def check_output_limit(self, request: ChatRequest) -> None:
        """400 naming the caller's field when it asks for more output than this model gives."""
        limit = request.output_limit
        if limit is not None and limit > self.max_output_tokens:
            field = request.output_limit_param
            raise InvalidRequest(
                f"{field} is {limit}, above the {self.max_output_tokens} output tokens model "
                f"'{self.id}' can produce: max_tokens (or max_completion_tokens) may be at most "
                f"{self.max_output_tokens}, or left out",
                code="max_tokens_too_large",
                param=field,
            )

    def output_limit(self, request: ChatRequest) -> int:
        """The output limit an adapter sends upstream: the request's, never more than the
        model's own, and the model's own when the request has none."""
        return min(request.output_limit or self.max_output_tokens, self.max_output_tokens)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details or {}
        return int(details.get("cached_tokens") or 0)


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class Choice(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = "stop"
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    # The catalog model that answered (a fallback's when one did); never sent to the caller.
    _served_by: str | None = PrivateAttr(default=None)

    @property
    def served_by(self) -> str:
        return self._served_by or self.model

    def served(self, model_id: str) -> ChatCompletion:
        self._served_by = model_id
        return self


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # Extensions of OpenAI's model object: whether this gateway has the provider's key, what
    # the model is for, its limits and list prices (USD per 1M tokens, as strings).
    configured: bool = True
    mode: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    dimensions: int | None = None
    pricing: dict[str, str] | None = None

    @classmethod
    def of(cls, model: ModelInfo, *, configured: bool) -> ModelCard:
        pricing = {
            "input_per_mtok": str(model.input_per_mtok),
            "cached_input_per_mtok": str(model.cached_input_per_mtok),
            "output_per_mtok": str(model.output_per_mtok),
        }
        return cls(
            id=model.id,
            created=model.created,
            owned_by=model.provider,
            configured=configured,
            mode=model.mode,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens if model.mode == "chat" else None,
            dimensions=model.dimensions,
            pricing=pricing,
        )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ChunkDelta(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    """One ``chat.completion.chunk`` event of a streamed answer, as OpenAI sends it."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)
