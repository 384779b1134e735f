"""Mistral's chat completions API: OpenAI's shape with its own names for a few things.

Mistral refuses fields it does not know (422), so the payload is built from the fields it
documents instead of passed through. The output limit is always sent as ``max_tokens``;
``seed`` is ``random_seed``, ``tool_choice: required`` is ``any``, image parts take the URL as
a string, and usage arrives in the last stream chunk without ``stream_options``.
"""

from __future__ import annotations

from typing import Any

from aigw.chat import ChatCompletion, ChatCompletionChunk, ChatRequest, ModelInfo
from aigw.embeddings import EmbeddingRequest
from aigw.providers import translate
from aigw.providers.base import VendorConfig
from aigw.providers.openai import OpenAIProvider

_FIELDS = (
    "temperature",
    "top_p",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "tools",
    "response_format",
)
_FINISH = {"model_length": "length", "error": "stop"}


def _message(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = message.model_dump(exclude_none=True)
    if isinstance(message.content, list):
        data["content"] = [
            {"type": "image_url", "image_url": translate.image_url(p)} if p.get("type") == "image_url" else p
            for p in message.content
        ]
    if data.get("role") == "developer":
        data["role"] = "system"
    return data


class MistralProvider(OpenAIProvider):
    def payload(self, model: ModelInfo, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": model.upstream,
            "messages": [_message(m) for m in request.messages],
            "stream": stream,
        }
        for name in _FIELDS:
            value = getattr(request, name)
            if value is not None:
                payload[name] = value
        payload["max_tokens"] = model.output_limit(request)
        if request.seed is not None:
            payload["random_seed"] = request.seed
        if request.tool_choice is not None:
            payload["tool_choice"] = "any" if request.tool_choice == "required" else request.tool_choice
        extra = request.model_extra or {}
        if "parallel_tool_calls" in extra:
            payload["parallel_tool_calls"] = extra["parallel_tool_calls"]
        return payload

    def embed_payload(self, model: ModelInfo, request: EmbeddingRequest) -> dict[str, Any]:
        # Mistral takes text only, and names the vector size output_dimension.
        payload: dict[str, Any] = {"model": model.upstream, "input": request.texts()}
        if request.dimensions is not None:
            payload["output_dimension"] = request.dimensions
        return payload

    def normalise(self, completion: ChatCompletion) -> ChatCompletion:
        for choice in completion.choices:
            choice.finish_reason = _FINISH.get(str(choice.finish_reason), choice.finish_reason)
        return completion

    def normalise_chunk(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        for choice in chunk.choices:
            if choice.finish_reason:
                choice.finish_reason = _FINISH.get(choice.finish_reason, choice.finish_reason)
        return chunk


def create() -> MistralProvider:
    return MistralProvider(
        "mistral", VendorConfig.from_env("MISTRAL", "Mistral", "https://api.mistral.ai/v1")
    )
