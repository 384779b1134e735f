"""The built-in mock model: deterministic answers with no network, for demos and tests.

``mock/echo`` answers ``Echo: <last user message>`` and reports token usage estimated
the same way the gateway estimates prompts, so metering can be checked end to end. Like a real
vendor it honours the output limit: a longer answer is cut there, with ``finish_reason:
"length"``, so a limit (the caller's, or the plan's default) is visible locally.

Given function tools (and ``tool_choice`` not ``none``), it calls one, deterministically: the
forced tool, else the first, with arguments filled from its JSON schema (strings get the last
user message). Once the conversation ends with a tool's result, it answers ``Echo: <result>``
in text, so a function-call round trip completes with no provider key.

``mock/embed`` answers deterministic unit vectors: the same text always gets the same vector,
different texts different ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import Iterator
from typing import Any

from aigw import clock
from aigw.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ModelInfo,
    Usage,
    new_completion_id,
)
from aigw.embeddings import Embedded, EmbeddingRequest, estimate_input
from aigw.providers import translate
from aigw.tokens import estimate_messages, estimate_text


def _value(schema: Any, text: str) -> Any:
    """A deterministic value of a JSON schema's type (strings: the last user message)."""
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        return _arguments(schema, text)
    if kind == "array":
        return [_value(schema.get("items"), text)] if schema.get("minItems") else []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _value(schema[key][0], text)
    return text


def _arguments(schema: Any, text: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    wanted = schema.get("required") or list(properties)
    return {name: _value(properties.get(name), text) for name in wanted if name in properties}


def _tool_call(request: ChatRequest, last_user: str) -> dict[str, Any] | None:
    """The call mock/echo makes, or None: no tools, ``tool_choice: none``, or the last message
    is already a tool's result (then it answers in text)."""
    tools = translate.function_tools(request)
    if not tools or request.tool_choice == "none" or request.messages[-1].role == "tool":
        return None
    forced = translate.forced_tool(request)
    tool = next((t for t in tools if t.get("name") == forced), tools[0])
    arguments = json.dumps(_arguments(tool.get("parameters"), last_user), separators=(",", ":"))
    digest = hashlib.sha256(f"{tool.get('name')}:{arguments}".encode()).hexdigest()[:24]
    return {
        "id": f"call_{digest}",
        "type": "function",
        "function": {"name": tool.get("name"), "arguments": arguments},
    }


class MockProvider:
    name = "mock"

    def embed(self, model: ModelInfo, request: EmbeddingRequest) -> Embedded:
        size = request.dimensions or model.dimensions or 256
        vectors = [_vector(item, size) for item in request.items()]
        return Embedded(vectors, estimate_input(request))

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        last_user = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
        call = _tool_call(request, last_user)
        prompt_tokens = estimate_messages(request.messages)
        if call is not None:
            used = estimate_text(call["function"]["name"] + call["function"]["arguments"])
            message = AssistantMessage(content=None, tool_calls=[call])
            return ChatCompletion(
                created=clock.now(),
                model=model.id,
                choices=[Choice(message=message, finish_reason="tool_calls")],
                usage=Usage(
                    prompt_tokens=prompt_tokens, completion_tokens=used, total_tokens=prompt_tokens + used
                ),
            )
        if request.messages[-1].role == "tool":
            last_user = request.messages[-1].text()
        text = f"Echo: {last_user}"
        fmt = request.response_format or {}
        if fmt.get("type") == "json_schema" and (fmt.get("json_schema") or {}).get("strict"):
            # Structured output: a JSON value of the schema, strings holding the echo.
            text = json.dumps(_value((fmt.get("json_schema") or {}).get("schema") or {}, last_user))

        finish = "stop"
        limit = model.output_limit(request)
        if estimate_text(text) > limit:
            text = text[: limit * 4]
            while estimate_text(text) > limit:
                text = text[:-1]
            finish = "length"
        prompt_tokens = estimate_messages(request.messages)
        completion_tokens = estimate_text(text)
        return ChatCompletion(
            created=clock.now(),
            model=model.id,
            choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The same answer as :meth:`complete`, a word at a time (a tool call: its name, then
        its arguments in two pieces)."""
        completion = self.complete(model, request)
        text = completion.choices[0].message.content or ""
        calls = completion.choices[0].message.tool_calls or []
        cid, created = new_completion_id(), completion.created

        def chunk(delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
            choice = ChunkChoice(delta=delta, finish_reason=finish)
            return ChatCompletionChunk(id=cid, created=created, model=model.id, choices=[choice])

        def chunks() -> Iterator[ChatCompletionChunk]:
            yield chunk(ChunkDelta(role="assistant", content=""))
            for index, call in enumerate(calls):
                fn = call["function"]
                start = {"index": index, "id": call["id"], "type": "function"}
                yield chunk(
                    ChunkDelta(tool_calls=[{**start, "function": {"name": fn["name"], "arguments": ""}}])
                )
                half = len(fn["arguments"]) // 2
                for part in (fn["arguments"][:half], fn["arguments"][half:]):
                    yield chunk(ChunkDelta(tool_calls=[{"index": index, "function": {"arguments": part}}]))
            for piece in re.findall(r"\S*\s*", text):
                if piece:
                    yield chunk(ChunkDelta(content=piece))
            yield chunk(ChunkDelta(), completion.choices[0].finish_reason)
            yield ChatCompletionChunk(
                id=cid, created=created, model=model.id, choices=[], usage=completion.usage
            )

        return chunks()


def _vector(item: str | list[int], size: int) -> list[float]:
    """A unit vector drawn from the SHA-256 of the input: deterministic, and unrelated for
    different inputs."""
    seed = item.encode() if isinstance(item, str) else b"tokens:" + ",".join(map(str, item)).encode()
    raw: list[float] = []
    counter = 0
    while len(raw) < size:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        raw.extend(v / 2**31 - 1.0 for v in struct.unpack(">8I", block))
        counter += 1
    raw = raw[:size]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 8) for v in raw]


def create() -> MockProvider:
    return MockProvider()
