"""``POST /v1/embeddings``: OpenAI's embeddings API in front of every vendor that embeds.

The request and answer are OpenAI's (single or batch ``input``, token arrays, ``dimensions``,
``encoding_format`` float or base64, ``usage``). Each vendor adapter with an ``embed`` method
translates it (:mod:`aigw.providers`); the gateway encodes base64 itself, so every vendor
answers both formats. A call is admitted, metered and billed like a chat call: its worst case
is its input alone (:class:`aigw.billing.admission.Estimate` with no output), and the usage
record says what the vendor counted, or an estimate where the vendor reports no count
(``usage_source: estimate``).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigw import invocation
from aigw.billing import admission
from aigw.billing.admission import Estimate
from aigw.billing.meter import open_meter
from aigw.catalog import ModelInfo, require_mode
from aigw.chat import Usage
from aigw.errors import InvalidRequest, UpstreamError
from aigw.keys import ApiKey
from aigw.providers import get_provider
from aigw.providers.upstream import MALFORMED
from aigw.tokens import estimate_text
from aigw.usage.records import UsageSource

ROUTE = "/v1/embeddings"
MAX_INPUTS = 2048  # OpenAI's own limit on one request's inputs
MAX_TOKENS_PER_INPUT = 8192


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request. ``input`` is a string, a list of strings, a list of token
    ids, or a list of such lists."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=100_000)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(default=None, max_length=512)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("input must not be empty")
        if len(items) > MAX_INPUTS:
            raise ValueError(f"input may hold at most {MAX_INPUTS} items")
        for item in items:
            if isinstance(item, str) and not item:
                raise ValueError("input must not contain empty strings")
            if isinstance(item, list):
                if not item:
                    raise ValueError("input must not contain empty token arrays")
                if len(item) > MAX_TOKENS_PER_INPUT or any(t < 0 for t in item):
                    raise ValueError(
                        f"token arrays hold at most {MAX_TOKENS_PER_INPUT} non-negative token ids"
                    )
            if isinstance(item, int) and item < 0:
                raise ValueError("token ids are non-negative")
        return value

    @property
    def is_tokens(self) -> bool:
        return isinstance(self.input, list) and not isinstance(self.input[0], str)

    def items(self) -> list[str] | list[list[int]]:
        """The inputs as a batch: strings, or token arrays (one array per input)."""
        value: Any = self.input
        if isinstance(value, str):
            return [value]
        if isinstance(value[0], int):
            return [list(value)]
        return list(value)

    def texts(self) -> list[str]:
        """The inputs as text, for vendors that take only text (400 for token arrays)."""
        if self.is_tokens:
            raise InvalidRequest(
                "This model takes text input only: send input as a string or a list of strings "
                "(token arrays are for OpenAI-format providers)",
                code="unsupported_input",
                param="input",
            )
        return [str(item) for item in self.items()]


@dataclass(frozen=True)
class Embedded:
    """What a vendor answered: one vector per input, in order, and its token count."""

    vectors: list[list[float]]
    prompt_tokens: int
    source: UsageSource = "provider"


class Embedder(Protocol):
    """The adapters that embed (OpenAI-format servers, Gemini, Mistral, Bedrock, mock)."""

    def embed(self, model: ModelInfo, request: EmbeddingRequest) -> Embedded: ...


def estimate_input(request: EmbeddingRequest) -> int:
    """Input tokens, estimated before the call (and billed when a vendor reports none)."""
    return sum(len(i) if isinstance(i, list) else estimate_text(i) for i in request.items())


def _check_dimensions(model: ModelInfo, request: EmbeddingRequest) -> None:
    asked = request.dimensions
    if asked is None or asked == model.dimensions:
        return
    if model.min_dimensions is None:
        raise InvalidRequest(
            f"The model '{request.model}' answers {model.dimensions}-dimension vectors and does not "
            "take dimensions; leave it out",
            code="unsupported_dimensions",
            param="dimensions",
        )
    top = model.dimensions or asked
    if not model.min_dimensions <= asked <= top:
        raise InvalidRequest(
            f"dimensions must be between {model.min_dimensions} and {top} for '{request.model}'",
            code="unsupported_dimensions",
            param="dimensions",
        )


def _answers_alike(first: ModelInfo, other: ModelInfo, request: EmbeddingRequest) -> bool:
    """Whether ``other`` may stand in for ``first``: an embedding model answering vectors of the
    size the caller gets from ``first``."""
    if other.mode != "embedding":
        return False
    if request.dimensions is None:
        return other.dimensions == first.dimensions
    try:
        _check_dimensions(other, request)
    except InvalidRequest:
        return False
    return True


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI answers it: floats, or base64 of little-endian float32 values."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def response_body(request: EmbeddingRequest, result: Embedded) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v, request.encoding_format)}
            for i, v in enumerate(result.vectors)
        ],
        "model": request.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


def reencode(body: dict[str, Any], encoding_format: str) -> dict[str, Any]:
    """A float answer in the format the caller asked for."""
    if encoding_format == "float":
        return body
    data = [{**row, "embedding": encode(row["embedding"], encoding_format)} for row in body["data"]]
    return {**body, "data": data}


def _embedder(provider: object, model: ModelInfo) -> Embedder:
    if not hasattr(provider, "embed"):
        raise InvalidRequest(
            f"The provider '{model.provider}' has no embeddings adapter here",
            code="model_not_supported",
            param="model",
        )
    return provider


def create(
    key: ApiKey, request: EmbeddingRequest, *, request_id: str, route: str = ROUTE
) -> tuple[dict[str, Any], str]:
    """Embed, metered: each model of the chain tried is one metered attempt, as for chat.
    The answer's body, and the catalog model that answered it."""
    terms = admission.terms_for(key)
    chain = [attempt.model for attempt in invocation.chain_for(terms, request.model)]
    require_mode(chain[0], "embedding", request.model)
    _check_dimensions(chain[0], request)
    # Vectors of another model are not comparable with the requested one's: a fallback must be
    # an embedding model giving vectors of the same size.
    chain = chain[:1] + [m for m in chain[1:] if _answers_alike(chain[0], m, request)]
    estimate = Estimate(prompt_tokens=estimate_input(request), produces_output=False)
    for n, model in enumerate(chain):
        embedder = _embedder(get_provider(model.provider), model)
        meter = open_meter(
            terms, model, estimate, request_id=invocation.attempt_id(request_id, n), route=route
        )
        try:
            result = invocation.with_retries(partial(embedder.embed, model, request))
            if len(result.vectors) != len(request.items()):
                raise UpstreamError(
                    f"{model.provider} answered {len(result.vectors)} vectors for "
                    f"{len(request.items())} inputs",
                    code=MALFORMED,
                )
        except Exception as exc:
            if invocation.failed_over(meter, exc, more=n + 1 < len(chain)):
                continue
            raise
        usage = Usage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
        meter.settle(usage, source=result.source)
        return response_body(request, result), model.id
    raise AssertionError("unreachable: the chain is never empty")
