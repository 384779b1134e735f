"""OpenAI's chat completions wire format: OpenAI itself, Azure OpenAI, and any server that
speaks it by base URL (Groq, Together, DeepSeek, Ollama, vLLM...).

The unified request *is* this format, so translation is mostly the model name, streaming
options, authentication and the output limit. The limit is always sent, in the one field each
server knows: ``max_completion_tokens`` for OpenAI, Azure and Groq (OpenAI's reasoning models
refuse ``max_tokens``), ``max_tokens`` for servers that only know that one.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any, Literal

from aigw import clock
from aigw.chat import ChatCompletion, ChatCompletionChunk, ChatRequest, ModelInfo
from aigw.embeddings import Embedded, EmbeddingRequest, estimate_input
from aigw.errors import UpstreamError
from aigw.providers.base import VendorConfig
from aigw.providers.upstream import (
    MALFORMED,
    event_json,
    events,
    guarded,
    malformed,
    open_stream,
    post_json,
    safe_message,
)
from aigw.sse import Event

Auth = Literal["bearer", "azure", "optional-bearer"]

LimitField = Literal["max_completion_tokens", "max_tokens"]

# Servers that speak OpenAI's format, by provider name: environment prefix and default URL.
COMPATIBLE: dict[str, tuple[str, str]] = {
    "openai": ("OPENAI", "https://api.openai.com/v1"),
    "groq": ("GROQ", "https://api.groq.com/openai/v1"),
    "together": ("TOGETHER", "https://api.together.xyz/v1"),
    "deepseek": ("DEEPSEEK", "https://api.deepseek.com/v1"),
    "ollama": ("OLLAMA", "http://127.0.0.1:11434/v1"),
    "vllm": ("VLLM", "http://127.0.0.1:8000/v1"),
}
_KEYLESS = {"ollama", "vllm"}
# Where each server reads the output limit; the others are sent max_completion_tokens.
_LIMIT_FIELD: dict[str, LimitField] = {
    "together": "max_tokens",
    "deepseek": "max_tokens",
    "ollama": "max_tokens",
    "vllm": "max_tokens",
}
_DISPLAY = {"openai": "OpenAI", "deepseek": "DeepSeek", "vllm": "vLLM"}
AZURE_API_VERSION = "2024-10-21"


class OpenAIProvider:
    def __init__(
        self,
        name: str,
        config: VendorConfig,
        *,
        auth: Auth = "bearer",
        api_version: str = "",
        limit_field: LimitField = "max_completion_tokens",
    ) -> None:
        self.name = name
        self._config = config
        self._auth = auth
        self._api_version = api_version
        self._limit_field: LimitField = limit_field
        self._client = config.client()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._auth == "azure":
            headers["api-key"] = self._config.secret()
        elif self._auth == "bearer" or self._config.api_key or self._config.api_key_parameter:
            headers["Authorization"] = f"Bearer {self._config.secret()}"
        return headers

    def _url(self, model: ModelInfo, endpoint: str = "chat/completions") -> str:
        if self._auth == "azure":
            # Azure addresses a deployment, whose name is the catalog's upstream name.
            return (
                f"{self._config.base_url}/openai/deployments/{model.upstream}/{endpoint}"
                f"?api-version={self._api_version}"
            )
        return f"{self._config.base_url}/{endpoint}"

    # ---- the Responses API (OpenAI's own, for /v1/responses) --------------------------------

    def respond(self, model: ModelInfo, body: dict[str, Any]) -> dict[str, Any]:
        answer = post_json(
            self._client, self._url(model, "responses"), body, self._headers(), self._config.vendor
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("output"), list):
            raise UpstreamError(f"{self._config.vendor} answered with an unexpected body", code=MALFORMED)
        return answer

    def respond_stream(self, model: ModelInfo, body: dict[str, Any]) -> Iterator[Event]:
        response = open_stream(
            self._client,
            self._url(model, "responses"),
            {**body, "stream": True},
            self._headers(),
            self._config.vendor,
        )
        return events(response, self._config.vendor)

    # ---- embeddings -----------------------------------------------------------------------

    def embed_payload(self, model: ModelInfo, request: EmbeddingRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": model.upstream,
            "input": request.input,
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        if request.user:
            payload["user"] = request.user
        return payload

    def embed(self, model: ModelInfo, request: EmbeddingRequest) -> Embedded:
        body = post_json(
            self._client,
            self._url(model, "embeddings"),
            self.embed_payload(model, request),
            self._headers(),
            self._config.vendor,
        )
        with malformed(self._config.vendor):
            rows = sorted(body["data"], key=lambda row: int(row.get("index", 0)))
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
            tokens = (body.get("usage") or {}).get("prompt_tokens")
        if tokens is None:
            return Embedded(vectors, estimate_input(request), "estimate")
        return Embedded(vectors, int(tokens))

    def payload(self, model: ModelInfo, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        payload = request.model_dump(exclude_none=True)
        payload["model"] = model.upstream
        payload.pop("stream_options", None)
        payload.pop("stream", None)
        payload.pop("max_tokens", None)
        payload.pop("max_completion_tokens", None)
        payload[self._limit_field] = model.output_limit(request)
        if stream:
            # Always ask for usage: the gateway meters from it, whatever the caller asked.
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return payload

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        body = post_json(
            self._client,
            self._url(model),
            self.payload(model, request, stream=False),
            self._headers(),
            self._config.vendor,
        )
        vendor = self._config.vendor
        if not isinstance(body, dict):
            raise UpstreamError(f"{vendor} answered with an unexpected body", code=MALFORMED)
        with malformed(vendor):
            body["model"] = model.id
            body.setdefault("created", clock.now())
            completion = ChatCompletion.model_validate(body)
        if not completion.choices:
            raise UpstreamError(f"{vendor} answered without choices", code=MALFORMED)
        return self.normalise(completion)

    def normalise(self, completion: ChatCompletion) -> ChatCompletion:
        return completion

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        response = open_stream(
            self._client,
            self._url(model),
            self.payload(model, request, stream=True),
            self._headers(),
            self._config.vendor,
        )
        vendor = self._config.vendor
        return guarded(self._chunks(model, events(response, vendor)), vendor)

    def _chunks(self, model: ModelInfo, stream: Generator[Event]) -> Iterator[ChatCompletionChunk]:
        try:
            for event in stream:
                if event.data.strip() == "[DONE]":
                    return
                data = event_json(event)
                if isinstance(data, dict) and "error" in data:
                    error = data["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    raise UpstreamError(f"{self._config.vendor} error: {safe_message(str(message))}")
                data["model"] = model.id
                data.setdefault("created", clock.now())
                data.setdefault("object", "chat.completion.chunk")
                yield self.normalise_chunk(ChatCompletionChunk.model_validate(data))
        finally:
            stream.close()

    def normalise_chunk(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        return chunk


def create(name: str = "openai") -> OpenAIProvider:
    prefix, default_url = COMPATIBLE[name]
    config = VendorConfig.from_env(prefix, _DISPLAY.get(name, name.capitalize()), default_url)
    return OpenAIProvider(
        name,
        config,
        auth="optional-bearer" if name in _KEYLESS else "bearer",
        limit_field=_LIMIT_FIELD.get(name, "max_completion_tokens"),
    )


def create_azure() -> OpenAIProvider:
    endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT", "")
    config = VendorConfig.from_env("AZURE_OPENAI", "Azure OpenAI", endpoint)
    version = os.environ.get("AZURE_OPENAI_API_VERSION") or AZURE_API_VERSION
    return OpenAIProvider("azure", config, auth="azure", api_version=version)
