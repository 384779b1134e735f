"""The Anthropic Messages format at the gateway's door (``POST /v1/messages``), so Claude SDK
clients work unchanged against any provider: requests become the unified chat request,
answers and streams go back in Anthropic's shape."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigw import sse, streaming
from aigw.chat import ChatCompletion, ChatMessage, ChatRequest, Usage
from aigw.errors import InvalidRequest
from aigw.invocation import MeteredStream
from aigw.keys import ApiKey
from aigw.tokens import estimate_messages, estimate_text

ROUTE = "/v1/messages"
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    # Anthropic refuses empty content too; an empty turn would also leave nothing to translate.
    content: str | Annotated[list[dict[str, Any]], Field(min_length=1)]


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[AnthropicMessage] = Field(min_length=1, max_length=10_000)
    max_tokens: int = Field(ge=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in content or [] if b.get("type") == "text")


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise InvalidRequest("image.source must be base64 or url", param="messages")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(blocks: list[dict[str, Any]]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "tool_result":
            content = block.get("content")
            text = content if isinstance(content, str) else _text(content)
            out.append(ChatMessage(role="tool", tool_call_id=str(block.get("tool_use_id", "")), content=text))
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            raise InvalidRequest(f"Content blocks of type '{kind}' are not supported", param="messages")
    if parts:
        out.append(ChatMessage(role="user", content=parts))
    return out


def _assistant_message(blocks: list[dict[str, Any]]) -> ChatMessage:
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    return ChatMessage(role="assistant", content=_text(blocks) or None, tool_calls=calls or None)


def to_chat_request(body: MessagesRequest) -> ChatRequest:
    messages: list[ChatMessage] = []
    system = _text(body.system) if body.system else ""
    if system:
        messages.append(ChatMessage(role="system", content=system))
    for message in body.messages:
        blocks = (
            [{"type": "text", "text": message.content}]
            if isinstance(message.content, str)
            else message.content
        )
        if message.role == "assistant":
            messages.append(_assistant_message(blocks))
        else:
            messages.extend(_user_messages(blocks))
    request: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "max_tokens": body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop_sequences,
        "stream": body.stream,
    }
    if body.stream:
        request["stream_options"] = {"include_usage": True}
    if body.tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in body.tools
        ]
    choice = body.tool_choice or {}
    if choice.get("type") == "tool":
        request["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice.get("type") in ("auto", "any", "none"):
        request["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice["type"]]
    if choice.get("disable_parallel_tool_use"):
        request["parallel_tool_calls"] = False
    user = (body.metadata or {}).get("user_id")
    if user:
        request["user"] = str(user)
    try:
        return ChatRequest.model_validate(request)
    except ValidationError as exc:
        # Input that is valid Anthropic but has no chat-completions equivalent.
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"Cannot translate the request: {first['msg']}", param=param) from exc


class CountTokensRequest(BaseModel):
    """``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[AnthropicMessage] = Field(min_length=1, max_length=10_000)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None


def count_tokens(key: ApiKey, body: CountTokensRequest) -> dict[str, int]:
    """The request's input tokens: Anthropic's own count for Anthropic models (when its key is
    configured here), the gateway's estimate (what admission reserves with) for the others.
    Counting is free and not metered, as on Anthropic."""
    from aigw import invocation, providers
    from aigw.catalog import require_mode

    model = invocation.resolve_model(key, body.model)
    require_mode(model, "chat", body.model)
    if model.provider == "anthropic" and providers.configured("anthropic"):
        provider = providers.get_provider("anthropic")
        counter = getattr(provider, "count_tokens", None)
        if counter is not None:
            return {"input_tokens": int(counter(model, body.model_dump(exclude_none=True)))}
    request = to_chat_request(
        MessagesRequest.model_validate({**body.model_dump(exclude_none=True), "max_tokens": 1})
    )
    tools = json.dumps(request.tools) if request.tools else ""
    return {"input_tokens": estimate_messages(request.messages) + estimate_text(tools)}


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached = usage.cached_tokens
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": cached,
    }


def _message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def from_completion(completion: ChatCompletion) -> dict[str, Any]:
    choice = completion.choices[0]
    content: list[dict[str, Any]] = []
    if choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    for call in choice.message.tool_calls or []:
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {"arguments": fn.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": arguments})
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.finish_reason), "end_turn"),
        "stop_sequence": None,
        "usage": _usage(completion.usage),
    }


def anthropic_events(stream: MeteredStream, model: str) -> Iterator[bytes]:
    """A metered stream as Anthropic's server-sent events (message_start, content blocks,
    message_delta with the stop reason and usage, message_stop)."""
    block = -1
    open_kind: str | None = None
    tool_blocks: dict[int, int] = {}  # OpenAI tool_calls index -> Anthropic block index
    stop_reason = "end_turn"

    def start(kind: str, content_block: dict[str, Any]) -> bytes:
        nonlocal block, open_kind
        out = stop()
        block += 1
        open_kind = kind
        return out + sse.encode(
            {"type": "content_block_start", "index": block, "content_block": content_block},
            "content_block_start",
        )

    def stop() -> bytes:
        nonlocal open_kind
        if open_kind is None:
            return b""
        open_kind = None
        return sse.encode({"type": "content_block_stop", "index": block}, "content_block_stop")

    message: dict[str, Any] = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    try:
        yield sse.encode({"type": "message_start", "message": message}, "message_start")
        for chunk in stream:
            if not chunk.choices:
                yield stop()
                delta = {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                }
                yield sse.encode({**delta, "usage": _usage(chunk.usage)}, "message_delta")
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                if open_kind != "text":
                    yield start("text", {"type": "text", "text": ""})
                text = {"type": "text_delta", "text": choice.delta.content}
                yield sse.encode(
                    {"type": "content_block_delta", "index": block, "delta": text}, "content_block_delta"
                )
            for call in choice.delta.tool_calls or []:
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                if index not in tool_blocks:
                    tool: dict[str, Any] = {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": {},
                    }
                    yield start("tool_use", tool)
                    tool_blocks[index] = block
                if fn.get("arguments"):
                    partial = {"type": "input_json_delta", "partial_json": fn["arguments"]}
                    event = {"type": "content_block_delta", "index": tool_blocks[index], "delta": partial}
                    yield sse.encode(event, "content_block_delta")
            if choice.finish_reason:
                stop_reason = STOP_REASONS.get(choice.finish_reason, "end_turn")
        yield sse.encode({"type": "message_stop"}, "message_stop")
    except Exception as exc:  # the status line is sent: the failure is the last event
        err = streaming.failure(exc)
        kind = "overloaded_error" if err.status >= 500 else err.error_type
        yield sse.encode({"type": "error", "error": {"type": kind, "message": err.message}}, "error")
    finally:
        stream.close()
