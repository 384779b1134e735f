"""Pieces of translation several vendor adapters share."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aigw import clock
from aigw.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatMessage,
    ChatRequest,
    Choice,
    ModelInfo,
    Usage,
    new_completion_id,
)
from aigw.errors import InvalidRequest


def system_text(request: ChatRequest) -> str:
    """System and developer messages, joined: vendors other than OpenAI take them apart."""
    return "\n\n".join(m.text() for m in request.messages if m.role in ("system", "developer") and m.text())


def conversation(request: ChatRequest) -> list[ChatMessage]:
    return [m for m in request.messages if m.role not in ("system", "developer")]


def parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A message's content as OpenAI content parts, whatever form it came in."""
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}] if message.content else []
    return list(message.content or [])


def image_url(part: dict[str, Any]) -> str:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise InvalidRequest("An image_url content part needs image_url.url", param="messages")
    return url


def data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a ``data:`` URL, or None for a web URL."""
    if not url.startswith("data:"):
        return None
    header, _, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not data:
        raise InvalidRequest("Image data URLs must be base64: data:<type>;base64,<data>", param="messages")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("An image data URL is not valid base64", param="messages") from exc
    return media_type or "image/png", data


def tool_arguments(call: dict[str, Any]) -> dict[str, Any]:
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            "tool_calls[].function.arguments must be a JSON object", param="messages"
        ) from exc
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def function_tools(request: ChatRequest) -> list[dict[str, Any]]:
    """The ``function`` of each tool (OpenAI has no other tool type for chat completions)."""
    out = []
    for tool in request.tools or []:
        fn = tool.get("function") if tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise InvalidRequest("Each tool needs type 'function' and function.name", param="tools")
        out.append(fn)
    return out


def forced_tool(request: ChatRequest) -> str | None:
    choice = request.tool_choice
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequest("tool_choice.function.name is required", param="tool_choice")
        return str(name)
    return None


def stop_list(request: ChatRequest) -> list[str] | None:
    if request.stop is None:
        return None
    return [request.stop] if isinstance(request.stop, str) else list(request.stop)


def json_instruction(request: ChatRequest) -> str | None:
    """For vendors without a JSON mode: the instruction that stands in for ``response_format``."""
    fmt = request.response_format or {}
    if fmt.get("type") == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema", {})
        return (
            "Respond with a single valid JSON object and nothing else, matching this JSON schema: "
            + json.dumps(schema, separators=(",", ":"))
        )
    return None


def usage(prompt: int, completion: int, cached: int = 0) -> Usage:
    """Usage in OpenAI's terms: ``prompt`` includes the ``cached`` part."""
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details={"cached_tokens": cached},
    )


def function_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """An OpenAI ``tool_calls`` entry from a vendor's tool use (arguments as a JSON string)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments or {})},
    }


def completion(
    model: ModelInfo,
    *,
    text: str,
    calls: list[dict[str, Any]],
    finish: str,
    usage: Usage,
    completion_id: str | None = None,
) -> ChatCompletion:
    """A one-choice chat completion; content is null only when the answer is tool calls alone."""
    message = AssistantMessage(content=text if text or not calls else None, tool_calls=calls or None)
    return ChatCompletion(
        id=completion_id or new_completion_id(),
        created=clock.now(),
        model=model.id,
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage,
    )


def append_turn(
    turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], *, field: str = "content"
) -> None:
    """Add a turn, merged into the previous one when the role repeats: Anthropic, Bedrock and
    Gemini want user and assistant turns to alternate (OpenAI's tool results are user turns there)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][field].extend(blocks)
    else:
        turns.append({"role": role, field: blocks})
