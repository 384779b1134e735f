"""Loopback servers that speak each vendor's documented wire format, streaming included.

``VendorServer`` routes by path to a handler per vendor; each handler checks what the vendor
checks (authentication headers, required fields) and answers in that vendor's shape, with
its error bodies. Tests script the content and failures through ``VendorScript``.

Each fake reads the output limit from its vendor's own field (``max_completion_tokens`` for
OpenAI, Azure and Groq, ``max_tokens`` for the other OpenAI-format servers, Mistral and
Anthropic, ``generationConfig.maxOutputTokens`` for Gemini, ``inferenceConfig.maxTokens`` for
Bedrock) and, like the vendor, stops there (``honour_limit``); a limit in a field the vendor
does not read is ignored, so an answer runs to ``completion_tokens``.
"""

from __future__ import annotations

import binascii
import itertools
import json
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.helpers.fake_upstream import Recorded, RecordingServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None  # sent one at a time, chunked, when set
    event_delay: float = 0.0


def json_answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status=status, body=json.dumps(body).encode(), headers=headers or {})


@dataclass
class VendorScript:
    """What the fakes answer: text or a tool call, usage, and failures to inject first."""

    text: str = "Hello from the fake vendor"
    tool_call: tuple[str, dict[str, Any]] | None = None  # (name, arguments)
    prompt_tokens: int = 1000
    completion_tokens: int = 500
    cached_tokens: int = 0
    failures: list[Answer] = field(default_factory=list)  # answered (and consumed) first
    pieces: int = 3  # how many deltas a streamed text is cut into
    event_delay: float = 0.0
    cut_after: int | None = None  # streamed events sent before the vendor hangs up
    honour_limit: bool = True  # False: the vendor answers in full whatever limit it is sent
    reasoning_tokens: int = 0  # OpenAI format: completion_tokens_details.reasoning_tokens

    def limited(self, limit: Any) -> tuple[str, int, bool]:
        """``(text, completion tokens, cut)`` under ``limit``, read from the vendor's own field:
        a word is a token, and an answer longer than the limit stops there."""
        if self.tool_call or not self.honour_limit or not isinstance(limit, int):
            return self.text, self.completion_tokens, False
        if limit >= self.completion_tokens:
            return self.text, self.completion_tokens, False
        words = re.findall(r"\S+\s*", self.text)
        return "".join(words[:limit]).rstrip(), limit, True

    def pieces_of(self, text: str | None = None) -> list[str]:
        text = self.text if text is None else text
        words = re.findall(r"\S+\s*", text) or [text]
        size = max(1, -(-len(words) // self.pieces))
        return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


# ---- OpenAI (and Azure, Groq, Mistral...) ------------------------------------------------


REASONING_MODELS = re.compile(r"^(o\d|gpt-5)")


def openai_chat(
    script: VendorScript,
    request: dict[str, Any],
    *,
    usage_in_last_chunk: bool = False,
    limit_field: str = "max_completion_tokens",
) -> Answer:
    model = request.get("model")
    text, completion_tokens, cut = script.limited(request.get(limit_field))
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "length" if cut else "stop"
    if script.tool_call:
        name, args = script.tool_call
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_fake1",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ],
        }
        finish = "tool_calls"
    usage: dict[str, Any] = {
        "prompt_tokens": script.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": script.prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": script.cached_tokens},
    }
    if script.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": script.reasoning_tokens}
    if not request.get("stream"):
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        return json_answer(body)

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [choice],
            **extra,
        }
        return sse(body)

    events = [chunk({"role": "assistant", "content": ""})]
    if script.tool_call:
        name, args = script.tool_call
        raw = json.dumps(args)
        start = {
            "index": 0,
            "id": "call_fake1",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [start]}))
        half = len(raw) // 2
        for part in (raw[:half], raw[half:]):
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    else:
        events += [chunk({"content": piece}) for piece in script.pieces_of(text)]
    if usage_in_last_chunk:  # Mistral: usage rides on the finishing chunk
        events.append(chunk({}, finish, usage=usage))
    else:
        events.append(chunk({}, finish))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(
                sse(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 1_700_000_000,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
    events.append(sse("[DONE]"))
    return Answer(content_type="text/event-stream", events=events)


def openai_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> Answer:
    kind = (
        "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    )
    return json_answer(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status, headers
    )


# ---- Anthropic ----------------------------------------------------------------------------


def anthropic_error(status: int, kind: str, message: str, *, headers: dict[str, str] | None = None) -> Answer:
    return json_answer({"type": "error", "error": {"type": kind, "message": message}}, status, headers)


def anthropic_messages(script: VendorScript, request: dict[str, Any], headers: dict[str, str]) -> Answer:
    if not headers.get("x-api-key"):
        return anthropic_error(401, "authentication_error", "x-api-key header is required")
    if not headers.get("anthropic-version"):
        return anthropic_error(400, "invalid_request_error", "anthropic-version header is required")
    if "max_tokens" not in request:
        return anthropic_error(400, "invalid_request_error", "max_tokens: Field required")
    roles = [m["role"] for m in request.get("messages", [])]
    if any(r not in ("user", "assistant") for r in roles) or any(
        a == b for a, b in itertools.pairwise(roles)
    ):
        return anthropic_error(
            400, "invalid_request_error", "messages: roles must alternate between user and assistant"
        )
    text, completion_tokens, cut = script.limited(request["max_tokens"])
    usage = {
        "input_tokens": script.prompt_tokens - script.cached_tokens,
        "output_tokens": completion_tokens,
        "cache_read_input_tokens": script.cached_tokens,
        "cache_creation_input_tokens": 0,
    }
    content: list[dict[str, Any]] = []
    stop = "max_tokens" if cut else "end_turn"
    if script.tool_call:
        name, args = script.tool_call
        content = [{"type": "tool_use", "id": "toolu_fake1", "name": name, "input": args}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": text}]
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if not request.get("stream"):
        return json_answer(message)
    start_usage = {**usage, "output_tokens": 1}
    events = [
        sse(
            {
                "type": "message_start",
                "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
            },
            "message_start",
        ),
        sse({"type": "ping"}, "ping"),
    ]
    if script.tool_call:
        name, args = script.tool_call
        raw = json.dumps(args)
        block = {"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {}}
        events.append(
            sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")
        )
        for part in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
            delta = {"type": "input_json_delta", "partial_json": part}
            events.append(
                sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
            )
    else:
        block = {"type": "text", "text": ""}
        events.append(
            sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")
        )
        for piece in script.pieces_of(text):
            delta = {"type": "text_delta", "text": piece}
            events.append(
                sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
            )
    events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    events.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": completion_tokens},
            },
            "message_delta",
        )
    )
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return Answer(content_type="text/event-stream", events=events)


# ---- Gemini -------------------------------------------------------------------------------


def gemini_error(status: int, message: str, state: str) -> Answer:
    return json_answer({"error": {"code": status, "message": message, "status": state}}, status)


def gemini_generate(
    script: VendorScript, request: dict[str, Any], headers: dict[str, str], stream: bool
) -> Answer:
    if not headers.get("x-goog-api-key"):
        return gemini_error(403, "Method doesn't allow unregistered callers", "PERMISSION_DENIED")
    if not request.get("contents"):
        return gemini_error(
            400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT"
        )
    limit = (request.get("generationConfig") or {}).get("maxOutputTokens")
    text, completion_tokens, cut = script.limited(limit)
    finish = "MAX_TOKENS" if cut else "STOP"
    usage = {
        "promptTokenCount": script.prompt_tokens,
        "candidatesTokenCount": completion_tokens,
        "totalTokenCount": script.prompt_tokens + completion_tokens,
        "cachedContentTokenCount": script.cached_tokens,
    }

    def response(parts: list[dict[str, Any]], finish: str | None, meta: dict[str, Any]) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {
            "candidates": [candidate],
            "usageMetadata": meta,
            "modelVersion": "gemini-fake",
            "responseId": "resp-fake",
        }

    if script.tool_call:
        name, args = script.tool_call
        parts_list = [[{"functionCall": {"name": name, "args": args}}]]
    else:
        parts_list = [[{"text": piece}] for piece in script.pieces_of(text)]
    if not stream:
        return json_answer(response([p for parts in parts_list for p in parts], finish, usage))
    events = []
    for i, parts in enumerate(parts_list):
        last = i == len(parts_list) - 1
        meta = (
            usage
            if last
            else {"promptTokenCount": script.prompt_tokens, "totalTokenCount": script.prompt_tokens}
        )
        events.append(sse(response(parts, finish if last else None, meta)))
    return Answer(content_type="text/event-stream", events=events)


# ---- Bedrock (Converse over REST-JSON, ConverseStream over AWS event stream) ------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    )


def eventstream_message(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One frame of ``application/vnd.amazon.eventstream``: prelude, CRCs, headers, payload."""
    if message_type == "event":
        headers = _header(":event-type", event_type) + _header(":content-type", "application/json")
    else:
        headers = _header(":exception-type", event_type) + _header(":content-type", "application/json")
    headers += _header(":message-type", message_type)
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def bedrock_error(status: int, kind: str, message: str) -> Answer:
    return Answer(
        status=status, body=json.dumps({"message": message}).encode(), headers={"x-amzn-ErrorType": kind}
    )


def bedrock_converse(
    script: VendorScript, request: dict[str, Any], headers: dict[str, str], stream: bool
) -> Answer:
    if "AWS4-HMAC-SHA256" not in headers.get("Authorization", ""):
        return bedrock_error(403, "AccessDeniedException", "Missing Authentication Token")
    if not request.get("messages"):
        return bedrock_error(400, "ValidationException", "messages must not be empty")
    limit = (request.get("inferenceConfig") or {}).get("maxTokens")
    text, completion_tokens, cut = script.limited(limit)
    usage = {
        "inputTokens": script.prompt_tokens - script.cached_tokens,
        "outputTokens": completion_tokens,
        "totalTokens": script.prompt_tokens + completion_tokens,
        "cacheReadInputTokens": script.cached_tokens,
    }
    stop = "tool_use" if script.tool_call else "max_tokens" if cut else "end_turn"
    if not stream:
        if script.tool_call:
            name, args = script.tool_call
            content: list[dict[str, Any]] = [
                {"toolUse": {"toolUseId": "tooluse_fake1", "name": name, "input": args}}
            ]
        else:
            content = [{"text": text}]
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 10},
        }
        return json_answer(body)
    frames = [eventstream_message("messageStart", {"role": "assistant"})]
    if script.tool_call:
        name, args = script.tool_call
        start = {"start": {"toolUse": {"toolUseId": "tooluse_fake1", "name": name}}, "contentBlockIndex": 0}
        frames.append(eventstream_message("contentBlockStart", start))
        delta = {"delta": {"toolUse": {"input": json.dumps(args)}}, "contentBlockIndex": 0}
        frames.append(eventstream_message("contentBlockDelta", delta))
    else:
        for piece in script.pieces_of(text):
            frames.append(
                eventstream_message("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0})
            )
    frames.append(eventstream_message("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(eventstream_message("messageStop", {"stopReason": stop}))
    frames.append(eventstream_message("metadata", {"usage": usage, "metrics": {"latencyMs": 10}}))
    return Answer(content_type="application/vnd.amazon.eventstream", events=frames)


# ---- embeddings (each vendor's wire format) and Anthropic's token count --------------------


def fake_vector(text: str, size: int) -> list[float]:
    """What the fakes embed a text as: its length, then its position's words, padded."""
    return [float(len(text))] + [float(i + 1) for i in range(max(size, 1) - 1)]


def _words(texts: list[Any]) -> int:
    return sum(len(t) if isinstance(t, list) else len(str(t).split()) for t in texts)


def openai_embeddings(request: dict[str, Any], *, dimensions_field: str = "dimensions") -> Answer:
    raw = request.get("input")
    if raw is None or raw == [] or raw == "":
        return openai_error(400, "'input' is a required property")
    texts = [raw] if isinstance(raw, str) or (isinstance(raw, list) and isinstance(raw[0], int)) else raw
    size = int(request.get(dimensions_field) or 4)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": fake_vector(json.dumps(t) if isinstance(t, list) else t, size),
        }
        for i, t in enumerate(texts)
    ]
    tokens = _words(texts)
    body = {
        "object": "list",
        "data": list(reversed(data)),  # the index says which input a row is: order is not promised
        "model": request.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_answer(body)


def gemini_embeddings(request: dict[str, Any], headers: dict[str, str]) -> Answer:
    if not headers.get("x-goog-api-key"):
        return gemini_error(403, "Method doesn't allow unregistered callers", "PERMISSION_DENIED")
    requests = request.get("requests") or []
    if not requests:
        return gemini_error(400, "* BatchEmbedContentsRequest.requests: is empty", "INVALID_ARGUMENT")
    rows = []
    for one in requests:
        text = "".join(p.get("text", "") for p in one["content"]["parts"])
        rows.append({"values": fake_vector(text, int(one.get("outputDimensionality") or 4))})
    return json_answer({"embeddings": rows})


def bedrock_invoke(model_id: str, request: dict[str, Any], headers: dict[str, str]) -> Answer:
    """InvokeModel for Titan Text Embeddings (one ``inputText``) and Cohere Embed (``texts``)."""
    if "AWS4-HMAC-SHA256" not in headers.get("Authorization", ""):
        return bedrock_error(403, "AccessDeniedException", "Missing Authentication Token")
    if model_id.startswith("cohere.embed"):
        texts = request.get("texts")
        if not texts or not request.get("input_type"):
            return bedrock_error(400, "ValidationException", "texts and input_type are required")
        body = {
            "id": "emb-fake",
            "response_type": "embeddings_floats",
            "texts": texts,
            "embeddings": [fake_vector(t, 4) for t in texts],
        }
        count = _words(texts)
    elif model_id.startswith("amazon.titan-embed"):
        text = request.get("inputText")
        if not isinstance(text, str) or not text:
            return bedrock_error(400, "ValidationException", "inputText is required")
        size = int(request.get("dimensions") or 1024)
        if size not in (256, 512, 1024):
            return bedrock_error(400, "ValidationException", "dimensions must be 256, 512 or 1024")
        count = _words([text])
        body = {"embedding": fake_vector(text, size), "inputTextTokenCount": count}
    else:
        return bedrock_error(400, "ValidationException", f"no fake for model {model_id}")
    return json_answer(body, headers={"X-Amzn-Bedrock-Input-Token-Count": str(count)})


def anthropic_count_tokens(request: dict[str, Any], headers: dict[str, str]) -> Answer:
    if not headers.get("x-api-key"):
        return anthropic_error(401, "authentication_error", "x-api-key header is required")
    if "max_tokens" in request:
        return anthropic_error(400, "invalid_request_error", "max_tokens: Extra inputs are not permitted")
    if not request.get("messages") or not request.get("model"):
        return anthropic_error(400, "invalid_request_error", "messages: Field required")
    return json_answer({"input_tokens": 4242})


def openai_responses(script: VendorScript, request: dict[str, Any]) -> Answer:
    """OpenAI's own Responses API: a response object, or its typed events."""
    if not request.get("input"):
        return openai_error(400, "Missing required parameter: 'input'.")
    text, completion_tokens, cut = script.limited(request.get("max_output_tokens"))
    base = {
        "id": "resp_fake1",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": request.get("model"),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": request.get("tools") or [],
        "store": request.get("store", True),
    }
    usage = {
        "input_tokens": script.prompt_tokens,
        "input_tokens_details": {"cached_tokens": script.cached_tokens},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": script.prompt_tokens + completion_tokens,
    }
    if script.tool_call:
        name, args = script.tool_call
        item: dict[str, Any] = {
            "type": "function_call",
            "id": "fc_fake1",
            "call_id": "call_fake1",
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }
    else:
        content = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {
            "type": "message",
            "id": "msg_fake1",
            "status": "completed",
            "role": "assistant",
            "content": [content],
        }
    status = "incomplete" if cut else "completed"
    final = {**base, "status": status, "output": [item], "usage": usage}
    if not request.get("stream"):
        return json_answer(final)
    seq = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

    started = {**base, "status": "in_progress", "output": [], "usage": None}
    events = [event("response.created", response=started), event("response.in_progress", response=started)]
    if item["type"] == "function_call":
        events.append(
            event(
                "response.output_item.added",
                output_index=0,
                item={**item, "arguments": "", "status": "in_progress"},
            )
        )
        for piece in (item["arguments"][:5], item["arguments"][5:]):
            events.append(
                event(
                    "response.function_call_arguments.delta", item_id="fc_fake1", output_index=0, delta=piece
                )
            )
        events.append(
            event(
                "response.function_call_arguments.done",
                item_id="fc_fake1",
                output_index=0,
                arguments=item["arguments"],
            )
        )
    else:
        events.append(
            event(
                "response.output_item.added",
                output_index=0,
                item={**item, "content": [], "status": "in_progress"},
            )
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        events.append(
            event(
                "response.content_part.added", item_id="msg_fake1", output_index=0, content_index=0, part=part
            )
        )
        for piece in script.pieces_of(text):
            events.append(
                event(
                    "response.output_text.delta",
                    item_id="msg_fake1",
                    output_index=0,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
            )
        events.append(
            event(
                "response.output_text.done",
                item_id="msg_fake1",
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
            )
        )
    events.append(event("response.output_item.done", output_index=0, item=item))
    events.append(event(f"response.{status}", response=final))
    return Answer(content_type="text/event-stream", events=events)


# ---- the server ---------------------------------------------------------------------------

Route = Callable[[Recorded, re.Match[str]], Answer]


class VendorServer(RecordingServer):
    """Every vendor on one loopback port, under a path prefix each:

    ``/openai/v1/chat/completions``, ``/azure/openai/deployments/<d>/chat/completions``,
    ``/mistral/v1/chat/completions``, ``/anthropic/v1/messages``,
    ``/gemini/v1beta/models/<m>:generateContent|streamGenerateContent``,
    ``/bedrock/model/<id>/converse|converse-stream``.
    """

    def __init__(self) -> None:
        self.script = VendorScript()
        self._routes: list[tuple[re.Pattern[str], Route]] = [
            (re.compile(r"^/(openai|groq|together|deepseek|ollama|vllm)/v1/embeddings$"), self._openai_embed),
            (re.compile(r"^/openai/v1/responses$"), self._openai_responses),
            (
                re.compile(r"^/azure/openai/deployments/([^/]+)/embeddings\?api-version=.+$"),
                self._azure_embed,
            ),
            (re.compile(r"^/mistral/v1/embeddings$"), self._mistral_embed),
            (re.compile(r"^/anthropic/v1/messages/count_tokens$"), self._anthropic_count),
            (re.compile(r"^/gemini/v1beta/models/([^:]+):batchEmbedContents$"), self._gemini_embed),
            (re.compile(r"^/bedrock/model/([^/]+)/invoke$"), self._bedrock_invoke),
            (re.compile(r"^/(openai|groq|together|deepseek|ollama|vllm)/v1/chat/completions$"), self._openai),
            (
                re.compile(r"^/azure/openai/deployments/([^/]+)/chat/completions\?api-version=.+$"),
                self._azure,
            ),
            (re.compile(r"^/mistral/v1/chat/completions$"), self._mistral),
            (re.compile(r"^/anthropic/v1/messages$"), self._anthropic),
            (
                re.compile(
                    r"^/gemini/v1beta/models/([^:]+):(generateContent|streamGenerateContent\?alt=sse)$"
                ),
                self._gemini,
            ),
            (re.compile(r"^/bedrock/model/([^/]+)/(converse|converse-stream)$"), self._bedrock),
        ]
        self.closed_early = threading.Event()
        super().__init__()

    def reset(self, script: VendorScript | None = None) -> VendorScript:
        self.script = script or VendorScript()
        self.requests.clear()
        self.closed_early.clear()
        return self.script

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # each vendor: failures first, then the scripted answer
    def _failure(self) -> Answer | None:
        return self.script.failures.pop(0) if self.script.failures else None

    def _openai(self, request: Recorded, match: re.Match[str]) -> Answer:
        server = match.group(1)
        if server not in ("ollama", "vllm") and not request.headers.get("Authorization", "").startswith(
            "Bearer "
        ):
            return openai_error(401, "You didn't provide an API key.")
        body = request.json()
        if server == "openai" and "max_tokens" in body and "max_completion_tokens" in body:
            return openai_error(
                400, "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported."
            )
        if server == "openai" and "max_tokens" in body and REASONING_MODELS.match(str(body.get("model"))):
            return openai_error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
            )
        field = "max_completion_tokens" if server in ("openai", "groq") else "max_tokens"
        return self._failure() or openai_chat(self.script, body, limit_field=field)

    def _azure(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not request.headers.get("api-key"):
            return json_answer(
                {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}, 401
            )
        body = request.json()
        body.setdefault("model", match.group(1))
        return self._failure() or openai_chat(self.script, body)

    def _mistral(self, request: Recorded, match: re.Match[str]) -> Answer:
        body = request.json()
        known = {
            "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
            "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n",
            "parallel_tool_calls", "prediction", "safe_prompt",
        }  # fmt: skip
        extra = sorted(set(body) - known)
        if extra:
            detail = [
                {"type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not permitted"}
                for name in extra
            ]
            return json_answer(
                {"object": "error", "message": {"detail": detail}, "type": "invalid_request_error"}, 422
            )
        return self._failure() or openai_chat(
            self.script, body, usage_in_last_chunk=True, limit_field="max_tokens"
        )

    def _anthropic(self, request: Recorded, match: re.Match[str]) -> Answer:
        return self._failure() or anthropic_messages(self.script, request.json(), request.headers)

    def _gemini(self, request: Recorded, match: re.Match[str]) -> Answer:
        stream = match.group(2).startswith("stream")
        return self._failure() or gemini_generate(self.script, request.json(), request.headers, stream)

    def _bedrock(self, request: Recorded, match: re.Match[str]) -> Answer:
        stream = match.group(2) == "converse-stream"
        return self._failure() or bedrock_converse(self.script, request.json(), request.headers, stream)

    def _openai_embed(self, request: Recorded, match: re.Match[str]) -> Answer:
        if match.group(1) not in ("ollama", "vllm") and not request.headers.get(
            "Authorization", ""
        ).startswith("Bearer "):
            return openai_error(401, "You didn't provide an API key.")
        return self._failure() or openai_embeddings(request.json())

    def _openai_responses(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return openai_error(401, "You didn't provide an API key.")
        return self._failure() or openai_responses(self.script, request.json())

    def _azure_embed(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not request.headers.get("api-key"):
            return json_answer({"error": {"code": "401", "message": "Access denied"}}, 401)
        return self._failure() or openai_embeddings(request.json())

    def _mistral_embed(self, request: Recorded, match: re.Match[str]) -> Answer:
        body = request.json()
        extra = sorted(set(body) - {"model", "input", "output_dimension", "output_dtype", "encoding_format"})
        if extra or not all(isinstance(t, str) for t in (body.get("input") or [None])):
            return json_answer(
                {"object": "error", "message": f"bad fields {extra}", "type": "invalid_request_error"}, 422
            )
        return self._failure() or openai_embeddings(body, dimensions_field="output_dimension")

    def _anthropic_count(self, request: Recorded, match: re.Match[str]) -> Answer:
        return self._failure() or anthropic_count_tokens(request.json(), request.headers)

    def _gemini_embed(self, request: Recorded, match: re.Match[str]) -> Answer:
        return self._failure() or gemini_embeddings(request.json(), request.headers)

    def _bedrock_invoke(self, request: Recorded, match: re.Match[str]) -> Answer:
        from urllib.parse import unquote

        return self._failure() or bedrock_invoke(unquote(match.group(1)), request.json(), request.headers)

    def _answer(self, request: Recorded) -> Answer:
        for pattern, route in self._routes:
            match = pattern.match(request.path)
            if match:
                return route(request, match)
        return json_answer({"error": {"message": f"no fake for {request.path}"}}, 404)

    def answer(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        answer = self._answer(request)
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            if answer.events is None:
                handler.send_header("Content-Length", str(len(answer.body)))
                handler.end_headers()
                handler.wfile.write(answer.body)
                return
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for n, event in enumerate(answer.events):
                if self.script.cut_after is not None and n >= self.script.cut_after:
                    handler.close_connection = True
                    return  # the vendor hangs up mid-stream
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                handler.wfile.flush()
                time.sleep(self.script.event_delay)
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.closed_early.set()
