"""OpenAI's Responses API at the gateway's door (``POST /v1/responses``), for the Agents SDK
and Codex-style clients, metered and billed like chat.

OpenAI models go straight through to OpenAI's own ``/v1/responses`` (always with ``store:
false`` upstream: state is the gateway's, per team); every other vendor is translated through
the chat adapters: input items become chat messages, the answer becomes response output items,
a stream becomes the Responses API's typed events (``response.created``,
``response.output_item.added``, ``response.output_text.delta``,
``response.function_call_arguments.delta``, ... ``response.completed`` with ``usage``).

``previous_response_id`` is supported: unless a request says ``store: false``, its input and
output are kept for the team (DynamoDB, ``RESPONSES_TTL_DAYS``, default 30), and a later
request naming it continues that conversation; another team's id is not found.
``GET``/``DELETE /v1/responses/{id}`` read and delete a stored response.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigw import clock, invocation, request_context, sse, streaming
from aigw.billing.meter import Meter
from aigw.catalog import ModelInfo, require_mode
from aigw.chat import ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, Usage
from aigw.errors import GatewayError, InvalidRequest, NotFound, UpstreamError
from aigw.keys import ApiKey
from aigw.providers import Provider
from aigw.providers.upstream import MALFORMED
from aigw.table import gateway_table
from aigw.tokens import estimate_messages, estimate_text
from aigw.usage.records import Flag

logger = Logger(service="aigw-responses")

ROUTE = "/v1/responses"
# Providers whose own Responses API the request goes to unchanged.
NATIVE = frozenset({"openai"})
_DAY = 86_400


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    text: dict[str, Any] | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] | None = None
    user: str | None = None
    # As on chat completions: other tiers are priced apart from the catalog's prices, which are
    # what a call is metered at.
    service_tier: Literal["auto", "default"] | None = None


# What goes to OpenAI's own Responses API as the caller sent it. Anything else stays here: hosted
# tools, background runs and priority tiers are charged in ways this gateway does not meter, and
# stored prompts, conversations, files and vector stores live in the operator's OpenAI account.
_NATIVE_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_logprobs",
        "text",
        "reasoning",
        "truncation",
        "include",
        "metadata",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "max_tool_calls",
    }
)
_REFUSED_FIELDS = {
    "background": "background responses are not available through this gateway",
    "conversation": "conversations stored at the vendor are not available: use previous_response_id",
    "prompt": "prompts stored at the vendor are not available: send instructions and input",
}
# OpenAI's reasoning models, whose reasoning items can only be sent back with their encrypted
# content when nothing is stored at OpenAI (``store: false``).
_REASONING = re.compile(r"^(o\d|gpt-5|gpt-\d\d)")


def check_request(request: ResponsesRequest) -> None:
    """What this gateway refuses before any vendor is called (400s naming the field)."""
    extra = request.model_extra or {}
    for name, why in _REFUSED_FIELDS.items():
        if extra.get(name) not in (None, False):
            raise InvalidRequest(f"{name}: {why}", code="unsupported_parameter", param=name)
    for n, tool in enumerate(request.tools or []):
        if tool.get("type") != "function":
            raise InvalidRequest(
                f"Tools of type '{tool.get('type')}' are not available through this gateway (it cannot "
                "meter what the vendor charges for them); function tools are",
                code="unsupported_tool",
                param=f"tools[{n}].type",
            )
    text = request.text or {}
    if not isinstance(text.get("format", {}), dict | None):
        raise InvalidRequest('text.format must be an object such as {"type": "text"}', param="text.format")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


# ---- input items -> chat messages --------------------------------------------------------


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts", param=where)
    out: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image" and part.get("image_url"):
            out.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(part.get("refusal", ""))})
        else:
            raise InvalidRequest(
                f"Content parts of type '{kind}' are not supported here", param=f"{where}.content[{n}]"
            )
    return out


def input_items(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as a list of items (a string is one user message)."""
    if request.input is None:
        return []
    if isinstance(request.input, str):
        return [{"type": "message", "role": "user", "content": request.input}]
    return list(request.input)


def to_messages(items: list[dict[str, Any]], instructions: str | None) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if instructions:
        messages.append(ChatMessage(role="system", content=instructions))
    for n, item in enumerate(items):
        where = f"input[{n}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise InvalidRequest(
                    f"{where}.role must be user, system, developer or assistant", param=where
                )
            content = _parts(item.get("content", ""), where)
            if role == "assistant" and isinstance(content, list):
                content = "".join(str(p.get("text", "")) for p in content)
            messages.append(ChatMessage(role=role, content=content))
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or ""),
                "type": "function",
                "function": {
                    "name": str(item.get("name") or ""),
                    "arguments": str(item.get("arguments") or ""),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and not isinstance(last.content, list):
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output", "")
            text = output if isinstance(output, str) else json.dumps(output)
            messages.append(
                ChatMessage(role="tool", tool_call_id=str(item.get("call_id") or ""), content=text)
            )
        elif kind == "reasoning":
            continue  # a vendor's reasoning summary: nothing another vendor can take back
        else:
            raise InvalidRequest(
                f"Input items of type '{kind}' are not supported here", param=f"{where}.type"
            )
    if not messages or all(m.role in ("system", "developer") for m in messages):
        raise InvalidRequest("input is required: a string or a list of input items", param="input")
    return messages


def _chat_tools(request: ResponsesRequest) -> list[dict[str, Any]] | None:
    if not request.tools:
        return None
    tools = []
    for n, tool in enumerate(request.tools):
        if not tool.get("name"):
            raise InvalidRequest("A function tool needs a name", param=f"tools[{n}].name")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        tools.append({"type": "function", "function": fn})
    return tools


def _chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def to_chat_request(request: ResponsesRequest, items: list[dict[str, Any]]) -> ChatRequest:
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": to_messages(items, request.instructions),
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "tools": _chat_tools(request) or None,
        "tool_choice": _chat_tool_choice(request.tool_choice),
        "response_format": _response_format(request.text),
        "user": request.user,
        "stream": request.stream,
    }
    if request.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    if request.stream:
        payload["stream_options"] = {"include_usage": True}
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"Cannot translate the request: {first['msg']}", param=param) from exc


# ---- chat answers -> response objects ----------------------------------------------------


def usage_body(usage: Usage | None, reasoning: int = 0) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def shell(request: ResponsesRequest, response_id: str, created: int) -> dict[str, Any]:
    """A response object's fields that echo the request, with no output yet."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "store": request.store is not False,
        "temperature": request.temperature,
        "text": request.text or {"format": {"type": "text"}},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_p": request.top_p,
        "metadata": request.metadata or {},
        "usage": None,
    }


def from_completion(
    request: ResponsesRequest, completion: ChatCompletion, response_id: str
) -> dict[str, Any]:
    choice = completion.choices[0]
    output: list[dict[str, Any]] = []
    if choice.message.content:
        output.append(message_item(_new_id("msg"), choice.message.content))
    for call in choice.message.tool_calls or []:
        fn = call.get("function") or {}
        output.append(
            call_item(_new_id("fc"), str(call.get("id")), str(fn.get("name")), str(fn.get("arguments") or ""))
        )
    body = shell(request, response_id, completion.created)
    body.update(output=output, usage=usage_body(completion.usage))
    _finish(body, choice.finish_reason)
    return body


def _finish(body: dict[str, Any], finish_reason: str | None) -> None:
    if finish_reason == "length":
        body.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    elif finish_reason == "content_filter":
        body.update(status="incomplete", incomplete_details={"reason": "content_filter"})
    else:
        body["status"] = "completed"


def usage_of_response(body: dict[str, Any]) -> Usage:
    """What OpenAI's response ``usage`` says, as the meter takes it (reasoning is output)."""
    raw = body.get("usage") or {}
    prompt = int(raw.get("input_tokens") or 0)
    completion = int(raw.get("output_tokens") or 0)
    cached = int((raw.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details={"cached_tokens": cached},
    )


# ---- stored conversations -----------------------------------------------------------------


def _pk(team_id: str) -> str:
    return f"RESPONSE#{team_id}"


def _ttl_days() -> int:
    raw = os.environ.get("RESPONSES_TTL_DAYS", "").strip()
    return max(1, min(int(raw), 365)) if raw else 30


_MAX_STORED = 350_000  # bytes, compressed: DynamoDB items stop at 400 KB


def store(team_id: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """Keep a response and the conversation that led to it (its input items and its output).
    Best effort: the call is answered and billed by now, and an error here would make an SDK
    send it (and pay for it) again; a follow-up naming it is then told it was not found."""
    try:
        _store(team_id, response, items)
    except Exception:
        logger.exception("a response could not be stored", extra={"response_id": response.get("id")})


def _store(team_id: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
    conversation = [*items, *response.get("output", [])]
    blob = zlib.compress(json.dumps({"response": response, "conversation": conversation}).encode())
    if len(blob) > _MAX_STORED:
        return  # too long to keep: a follow-up naming it is told it was not found
    gateway_table().put(
        {
            "pk": _pk(team_id),
            "sk": str(response["id"]),
            "type": "response",
            "blob": blob,
            "ttl": clock.now() + _ttl_days() * _DAY,
        }
    )


def _load(team_id: str, response_id: str) -> dict[str, Any] | None:
    if not 0 < len(response_id) <= 256:
        return None  # no id of ours is that long (and a sort key stops at 1 KB)
    item = gateway_table().get(_pk(team_id), response_id)
    if item is None or int(item.get("ttl", 0)) < clock.now():
        return None
    blob = item["blob"]
    data: dict[str, Any] = json.loads(zlib.decompress(bytes(blob.value if hasattr(blob, "value") else blob)))
    return data


def retrieve(key: ApiKey, response_id: str) -> dict[str, Any]:
    data = _load(key.team_id, response_id)
    if data is None:
        raise NotFound(f"Response with id '{response_id}' not found.", code="response_not_found")
    response: dict[str, Any] = data["response"]
    return response


def delete(key: ApiKey, response_id: str) -> dict[str, Any]:
    retrieve(key, response_id)
    gateway_table().delete(_pk(key.team_id), response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def _history(key: ApiKey, request: ResponsesRequest) -> list[dict[str, Any]]:
    if request.previous_response_id is None:
        return []
    data = _load(key.team_id, request.previous_response_id)
    if data is None:
        raise InvalidRequest(
            f"Previous response with id '{request.previous_response_id}' not found.",
            code="previous_response_not_found",
            param="previous_response_id",
        )
    conversation: list[dict[str, Any]] = data["conversation"]
    return conversation


# ---- the call ----------------------------------------------------------------------------


def _native_body(
    request: ResponsesRequest, model: ModelInfo, items: list[dict[str, Any]], limit: int
) -> dict[str, Any]:
    sent = request.model_dump(exclude_none=True)
    # previous_response_id is expanded into ``items`` here (the state is ours), and nothing is
    # stored at OpenAI.
    body = {k: v for k, v in sent.items() if k in _NATIVE_FIELDS}
    body.update(model=model.upstream, input=items, store=False, max_output_tokens=limit)
    if _REASONING.match(model.upstream):
        # Reasoning items come back with their encrypted content, so that a follow-up can send
        # them again (OpenAI keeps nothing when store is false).
        body["include"] = sorted({*body.get("include", []), "reasoning.encrypted_content"})
    return body


def _check_output_limit(model: ModelInfo, request: ResponsesRequest) -> None:
    """400 naming this API's own field (the chat check further on names the chat fields)."""
    limit = request.max_output_tokens
    if limit is not None and limit > model.max_output_tokens:
        raise InvalidRequest(
            f"max_output_tokens is {limit}, above the {model.max_output_tokens} output tokens model "
            f"'{model.id}' can produce: it may be at most {model.max_output_tokens}, or left out",
            code="max_tokens_too_large",
            param="max_output_tokens",
        )


@dataclass
class _Native:
    body: dict[str, Any]


def create(key: ApiKey, request: ResponsesRequest, *, request_id: str) -> dict[str, Any]:
    """A whole response. Streamed requests go through :func:`stream`."""
    check_request(request)
    first = invocation.resolve_model(key, request.model)
    require_mode(first, "chat", request.model)
    _check_output_limit(first, request)
    items = [*_history(key, request), *input_items(request)]
    chat = to_chat_request(request.model_copy(update={"stream": False}), items)
    response_id = _new_id("resp")

    def call(model: ModelInfo, provider: Provider, sent: ChatRequest) -> _Native | ChatCompletion:
        if model.provider in NATIVE and hasattr(provider, "respond"):
            body = _native_body(request, model, items, model.output_limit(sent))
            return _Native(invocation.with_retries(lambda: provider.respond(model, body)))
        return invocation.with_retries(lambda: provider.complete(model, sent))

    def finish(
        meter: Meter, attempt: invocation.Attempt, sent: ChatRequest, result: _Native | ChatCompletion
    ) -> dict[str, Any]:
        if isinstance(result, _Native):
            body = result.body
            meter.settle(usage_of_response(body))
            body.update(model=attempt.name, previous_response_id=request.previous_response_id)
            body["store"] = request.store is not False
        else:
            result.usage = meter.settle(result.usage)
            body = from_completion(request, result, response_id)
        return body

    body = invocation._attempts(
        key, chat, request_id, ROUTE, call, finish, api_slug=None, fallbacks=(), tried=None
    )
    if request.store is not False:
        store(key.team_id, body, items)
    return body


# ---- streaming ---------------------------------------------------------------------------


@dataclass
class _Events:
    """Writes the Responses API's typed events with their running sequence number."""

    sequence: int = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse.encode(payload, kind)


@dataclass
class _ChatToEvents:
    """A metered chat stream as Responses API events."""

    request: ResponsesRequest
    response_id: str
    created: int
    write: _Events = field(default_factory=_Events)
    output: list[dict[str, Any]] = field(default_factory=list)
    text_index: int | None = None
    calls: dict[int, int] = field(default_factory=dict)  # chat tool index -> output index
    finish_reason: str | None = None
    final: dict[str, Any] | None = None

    def _close_text(self) -> Iterator[bytes]:
        if self.text_index is None:
            return
        index, self.text_index = self.text_index, None
        item = self.output[index]
        item["status"] = "completed"
        text = item["content"][0]["text"]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        yield self.write("response.output_text.done", **common, text=text, logprobs=[])
        yield self.write("response.content_part.done", **common, part=item["content"][0])
        yield self.write("response.output_item.done", output_index=index, item=item)

    def _close_calls(self) -> Iterator[bytes]:
        for index in self.calls.values():
            item = self.output[index]
            item["status"] = "completed"
            yield self.write(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
            yield self.write("response.output_item.done", output_index=index, item=item)
        self.calls = {}

    def start(self) -> Iterator[bytes]:
        body = shell(self.request, self.response_id, self.created)
        yield self.write("response.created", response=body)
        yield self.write("response.in_progress", response=body)

    def chunk(self, chunk: ChatCompletionChunk) -> Iterator[bytes]:
        for choice in chunk.choices:
            if choice.delta.content:
                if self.text_index is None:
                    yield from self._close_calls()
                    item = message_item(_new_id("msg"), "", "in_progress")
                    self.output.append(item)
                    self.text_index = len(self.output) - 1
                    # Its text part is announced next (content_part.added), as OpenAI does.
                    yield self.write(
                        "response.output_item.added",
                        output_index=self.text_index,
                        item={**item, "content": []},
                    )
                    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    yield self.write(
                        "response.content_part.added",
                        item_id=item["id"],
                        output_index=self.text_index,
                        content_index=0,
                        part=part,
                    )
                item = self.output[self.text_index]
                item["content"][0]["text"] += choice.delta.content
                yield self.write(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=self.text_index,
                    content_index=0,
                    delta=choice.delta.content,
                    logprobs=[],
                )
            for call in choice.delta.tool_calls or []:
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                if index not in self.calls:
                    yield from self._close_text()
                    item = call_item(
                        _new_id("fc"), str(call.get("id") or ""), str(fn.get("name") or ""), "", "in_progress"
                    )
                    self.output.append(item)
                    self.calls[index] = len(self.output) - 1
                    yield self.write("response.output_item.added", output_index=self.calls[index], item=item)
                item = self.output[self.calls[index]]
                if fn.get("arguments"):
                    item["arguments"] += fn["arguments"]
                    yield self.write(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=self.calls[index],
                        delta=fn["arguments"],
                    )
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    def end(self, usage: Usage | None) -> Iterator[bytes]:
        yield from self._close_text()
        yield from self._close_calls()
        body = shell(self.request, self.response_id, self.created)
        body.update(output=self.output, usage=usage_body(usage))
        _finish(body, self.finish_reason)
        yield self.write(f"response.{body['status']}", response=body)
        self.final = body


def _error_event(write: _Events, exc: Exception) -> bytes:
    err = streaming.failure(exc)
    return write("error", code=err.code, message=err.message, param=err.param)


def _chat_events(stream: invocation.MeteredStream, translate: _ChatToEvents, on_done: Any) -> Iterator[bytes]:
    try:
        yield from translate.start()
        for chunk in stream:
            if chunk.choices:
                yield from translate.chunk(chunk)
            else:
                yield from translate.end(chunk.usage)
                break
        else:
            yield from translate.end(stream.usage)
        if translate.final is not None:
            on_done(translate.final)
    except Exception as exc:  # the status line is sent: the failure is the last event
        yield _error_event(translate.write, exc)
    finally:
        stream.close()


# The events that end a response and carry its usage.
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass
class NativeStream:
    """OpenAI's own response events on their way to the caller, metered however they end: by
    the final event's usage; when the client goes away, the rest is read on, unseen, for that
    usage (the vendor bills the whole answer), as :class:`aigw.invocation.MeteredStream` does
    for chat; when the vendor fails mid-way, by the prompt and what was generated."""

    meter: Meter
    request: ResponsesRequest
    prompt: ChatRequest
    first: sse.Event | None
    rest: Iterator[sse.Event]
    seconds_left: float | None = None
    final: dict[str, Any] | None = None
    _generated: list[str] = field(default_factory=list)
    _metered: bool = False
    _error: GatewayError | None = None
    _client_gone: bool = False
    _draining: threading.Thread | None = None
    _started_at: float = field(default_factory=clock.now_precise)

    def _read(self, event: sse.Event) -> dict[str, Any] | None:
        """One upstream event, observed (deltas, the final response); None at ``[DONE]``."""
        if event.data.strip() == "[DONE]":
            return None
        data = json.loads(event.data)
        if not isinstance(data, dict):
            raise UpstreamError("OpenAI sent a malformed event", code=MALFORMED)
        kind = str(data.get("type") or event.event)
        data["type"] = kind
        if kind.endswith(".delta") and isinstance(data.get("delta"), str):
            self._generated.append(data["delta"])
        response = data.get("response")
        if isinstance(response, dict):
            response["model"] = self.request.model
            response["previous_response_id"] = self.request.previous_response_id
            response["store"] = self.request.store is not False
            if kind in _FINAL:
                self.final = response
        return data

    def events(self) -> Iterator[bytes]:
        write = _Events()
        try:
            event = self.first
            while event is not None:
                data = self._read(event)
                if data is None:
                    break
                yield write(
                    data["type"], **{k: v for k, v in data.items() if k not in ("type", "sequence_number")}
                )
                if data["type"] in _FINAL:
                    break
                event = next(self.rest, None)
        except GeneratorExit:
            # The consumer stopped between events: the client went away.
            if not self._metered and self.final is None:
                self._client_gone = True
                self._draining = invocation.drain(self._read_rest, self.seconds_left, self._started_at)
            raise
        except GatewayError as exc:
            self._error = exc
            yield _error_event(write, exc)
        except Exception as exc:
            yield _error_event(write, exc)
        finally:
            self.close()

    def _read_rest(self) -> None:
        most = self.meter.output_limit * 2 + 256  # a vendor ignoring the limit is cut off
        try:
            for event in self.rest:
                data = self._read(event)
                if data is None or self.final is not None:
                    break
                if estimate_text("".join(self._generated)) > most:
                    break
        except Exception as exc:  # the vendor failed after the client left: bill what can be had
            logger.warning("upstream failed while read on after a disconnect", extra={"error": repr(exc)})
        finally:
            _close(self.rest)

    def _settle(self) -> None:
        if self._metered:
            return
        self._metered = True
        final = self.final
        if final is not None and self._draining is None:
            flags: tuple[Flag, ...] = ("client_disconnected",) if self._client_gone else ()
            self.meter.settle(usage_of_response(final), source="provider", flags=flags)
            return
        if self._client_gone:
            self.meter.settle_abandoned(estimate_text("".join(self._generated)))
            return
        if self._error is not None and not self._generated:
            self.meter.fail(self._error)
            return
        # The vendor failed mid-way, or ended without its final event: the prompt and what it
        # generated, estimated.
        prompt = estimate_messages(self.prompt.messages)
        completion = estimate_text("".join(self._generated))
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        self.meter.settle(usage, source="estimate", status=self._error.status if self._error else 200)

    def close(self) -> None:
        """Stop: at the end of the events, or for a stream never iterated or abandoned."""
        if self._metered:
            return
        if self.final is None and self._error is None and not self._client_gone:
            self._client_gone = True
            self._draining = invocation.drain(self._read_rest, self.seconds_left, self._started_at)
        if self._draining is None:
            _close(self.rest)
        self._settle()


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


Started = tuple[Any, Iterator[Any]]


def stream(key: ApiKey, request: ResponsesRequest, *, request_id: str) -> streaming.StreamingResponse:
    """A streamed response: vendors are tried until one has sent its first event."""
    check_request(request)
    first = invocation.resolve_model(key, request.model)
    require_mode(first, "chat", request.model)
    _check_output_limit(first, request)
    items = [*_history(key, request), *input_items(request)]
    chat = to_chat_request(request, items)
    response_id = _new_id("resp")
    keep = request.store is not False

    def remember(body: dict[str, Any]) -> None:
        if keep and body.get("status") in ("completed", "incomplete"):
            store(key.team_id, body, items)

    def call(model: ModelInfo, provider: Provider, sent: ChatRequest) -> tuple[bool, Started]:
        native = model.provider in NATIVE and hasattr(provider, "respond_stream")

        def start() -> Started:
            if native:
                body = _native_body(request, model, items, model.output_limit(sent))
                events: Iterator[Any] = provider.respond_stream(model, body)  # type: ignore[attr-defined]
            else:
                events = provider.stream(model, sent)
            try:
                return next(events, None), events
            except BaseException:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
                raise

        return native, invocation.with_retries(start)

    def finish(
        meter: Meter, attempt: invocation.Attempt, sent: ChatRequest, started: tuple[bool, Started]
    ) -> streaming.StreamingResponse:
        native, (first, rest) = started
        seconds_left = request_context.seconds_left()
        if native:
            passthrough = NativeStream(
                meter=meter, request=request, prompt=sent, first=first, rest=rest, seconds_left=seconds_left
            )

            def body() -> Iterator[bytes]:
                yield from passthrough.events()
                if passthrough.final is not None:
                    remember(passthrough.final)

            return streaming.event_stream(body(), on_close=passthrough.close)
        metered = invocation.MeteredStream(
            meter=meter,
            request=sent,
            model_name=attempt.name,
            first=first,
            rest=rest,
            seconds_left=seconds_left,
        )
        translate = _ChatToEvents(request, response_id, clock.now())
        return streaming.event_stream(_chat_events(metered, translate, remember), on_close=metered.close)

    return invocation._attempts(
        key, chat, request_id, ROUTE, call, finish, api_slug=None, fallbacks=(), tried=None
    )
