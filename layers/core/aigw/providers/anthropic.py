"""Anthropic's Messages API (``POST /v1/messages``), both ways, plain and streamed."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from aigw import clock
from aigw.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ChunkChoice,
    ChunkDelta,
    ModelInfo,
    Usage,
    new_completion_id,
)
from aigw.errors import InvalidRequest, UpstreamError
from aigw.providers import translate
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

API_VERSION = "2023-06-01"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    url = translate.image_url(part)
    inline = translate.data_url(url)
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = inline
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _user_blocks(message: Any) -> list[dict[str, Any]]:
    blocks = []
    for part in translate.parts(message):
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        else:
            raise InvalidRequest(
                f"Content parts of type '{kind}' are not supported by Anthropic", param="messages"
            )
    return blocks


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        translate.append_turn(out, role, blocks)

    for message in translate.conversation(request):
        if message.role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.text(),
            }
            add("user", [result])
        elif message.role == "assistant":
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": message.text()}] if message.text() else []
            )
            for call in message.tool_calls or []:
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or "",
                        "name": fn.get("name") or "",
                        "input": translate.tool_arguments(call),
                    }
                )
            add("assistant", blocks)
        else:
            add("user", _user_blocks(message))
    return out


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    forced = translate.forced_tool(request)
    choice: dict[str, Any] | None
    if forced:
        choice = {"type": "tool", "name": forced}
    else:
        kinds = {"auto": "auto", "required": "any", "none": "none"}
        kind = kinds.get(str(request.tool_choice))
        choice = {"type": kind} if kind else None
    extra = request.model_extra or {}
    if choice is not None and extra.get("parallel_tool_calls") is False:
        choice["disable_parallel_tool_use"] = True
    return choice


def to_anthropic(model: ModelInfo, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model.upstream,
        "messages": _messages(request),
        # Required by Anthropic, and always the limit the call was admitted with.
        "max_tokens": model.output_limit(request),
    }
    system = "\n\n".join(filter(None, [translate.system_text(request), translate.json_instruction(request)]))
    if system:
        payload["system"] = system
    if request.temperature is not None:
        payload["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    stops = translate.stop_list(request)
    if stops:
        payload["stop_sequences"] = stops
    tools = translate.function_tools(request)
    if tools and request.tool_choice != "none":
        payload["tools"] = [
            {
                "name": fn["name"],
                "description": fn.get("description", ""),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            for fn in tools
        ]
        choice = _tool_choice(request)
        if choice is not None:
            payload["tool_choice"] = choice
    if request.user:
        payload["metadata"] = {"user_id": request.user}
    if stream:
        payload["stream"] = True
    return payload


def usage_of(raw: dict[str, Any]) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; OpenAI includes them."""
    cached = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached + int(raw.get("cache_creation_input_tokens") or 0)
    return translate.usage(prompt, int(raw.get("output_tokens") or 0), cached)


def from_anthropic(model: ModelInfo, body: dict[str, Any]) -> ChatCompletion:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in body.get("content") or []:
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(translate.function_call(block.get("id"), block.get("name"), block.get("input")))
    return translate.completion(
        model,
        text="".join(text),
        calls=calls,
        finish=FINISH_REASONS.get(str(body.get("stop_reason")), "stop"),
        usage=usage_of(body.get("usage") or {}),
        completion_id=str(body["id"]) if body.get("id") else None,
    )


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: VendorConfig) -> None:
        self._config = config
        self._client = config.client()

    def _headers(self) -> dict[str, str]:
        return {
            "x-api-key": self._config.secret(),
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        body = post_json(
            self._client,
            f"{self._config.base_url}/v1/messages",
            to_anthropic(model, request, stream=False),
            self._headers(),
            "Anthropic",
        )
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            raise UpstreamError("Anthropic answered without a message's content", code=MALFORMED)
        with malformed("Anthropic"):
            return from_anthropic(model, body)

    def count_tokens(self, model: ModelInfo, body: dict[str, Any]) -> int:
        """Anthropic's own count (``/v1/messages/count_tokens``) of a Messages request body."""
        payload = {k: v for k, v in body.items() if k in _COUNTED_FIELDS}
        payload["model"] = model.upstream
        answer = post_json(
            self._client,
            f"{self._config.base_url}/v1/messages/count_tokens",
            payload,
            self._headers(),
            "Anthropic",
        )
        with malformed("Anthropic"):
            return int(answer["input_tokens"])

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        response = open_stream(
            self._client,
            f"{self._config.base_url}/v1/messages",
            to_anthropic(model, request, stream=True),
            self._headers(),
            "Anthropic",
        )
        return guarded(_chunks(model, events(response, "Anthropic")), "Anthropic")


def _chunks(model: ModelInfo, stream: Generator[Event]) -> Iterator[ChatCompletionChunk]:
    cid, created = new_completion_id(), clock.now()
    usage: dict[str, Any] = {}
    tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index

    def chunk(delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=cid, created=created, model=model.id, choices=[ChunkChoice(delta=delta, finish_reason=finish)]
        )

    try:
        for event in stream:
            data = event_json(event)
            kind = data.get("type", event.event)
            if kind == "message_start":
                message = data.get("message") or {}
                cid = str(message.get("id") or cid)
                usage.update(message.get("usage") or {})
                yield chunk(ChunkDelta(role="assistant", content=""))
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    index = tool_index.setdefault(int(data.get("index", 0)), len(tool_index))
                    call = {
                        "index": index,
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""},
                    }
                    yield chunk(ChunkDelta(tool_calls=[call]))
                elif block.get("type") == "text" and block.get("text"):
                    yield chunk(ChunkDelta(content=str(block["text"])))
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta":
                    yield chunk(ChunkDelta(content=str(delta.get("text", ""))))
                elif delta.get("type") == "input_json_delta":
                    index = tool_index.get(int(data.get("index", 0)), 0)
                    call = {"index": index, "function": {"arguments": str(delta.get("partial_json", ""))}}
                    yield chunk(ChunkDelta(tool_calls=[call]))
            elif kind == "message_delta":
                usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
                reason = (data.get("delta") or {}).get("stop_reason")
                if reason:
                    yield chunk(ChunkDelta(), FINISH_REASONS.get(str(reason), "stop"))
            elif kind == "message_stop":
                yield ChatCompletionChunk(
                    id=cid, created=created, model=model.id, choices=[], usage=usage_of(usage)
                )
                return
            elif kind == "error":
                error = data.get("error") or {}
                raise UpstreamError(
                    f"Anthropic error: {safe_message(str(error.get('message') or error.get('type')))}",
                    extra={"upstream_error_type": safe_message(str(error.get("type")))[:100]},
                )
    finally:
        stream.close()


# What Anthropic's count_tokens takes of a Messages request.
_COUNTED_FIELDS = ("messages", "system", "tools", "tool_choice", "thinking")


def create() -> AnthropicProvider:
    return AnthropicProvider(VendorConfig.from_env("ANTHROPIC", "Anthropic", "https://api.anthropic.com"))
