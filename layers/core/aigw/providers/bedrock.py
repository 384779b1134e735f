"""AWS Bedrock through the Converse / ConverseStream API (Llama, Claude, Mistral, Nova...).

No API key: boto3 signs with the Lambda's IAM role. ``BEDROCK_REGION`` picks the region
(default: the function's), ``BEDROCK_ENDPOINT_URL`` another endpoint (tests use a loopback
fake). botocore's own retries are off: the gateway retries and falls back itself.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.eventstream import ParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from aigw import clock, surrogates
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
from aigw.config import settings
from aigw.embeddings import Embedded, EmbeddingRequest, estimate_input
from aigw.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from aigw.providers import translate
from aigw.providers.upstream import MALFORMED, guarded, malformed, safe_message

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
# What botocore raises for a refusal, a transport failure or an answer it cannot parse.
_BOTO_ERRORS = (ClientError, BotoCoreError, ParserError, ResponseParserError)
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
_CALLERS_FAULT = {"ValidationException"}
_TIMEOUTS = {"ModelTimeoutException"}


def error_from(exc: Exception) -> GatewayError:
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return UpstreamTimeout("Bedrock did not answer in time")
    if isinstance(exc, EndpointConnectionError):
        return UpstreamError(
            f"Bedrock could not be reached: {type(exc).__name__}", code="upstream_unreachable"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = f"Bedrock error: {safe_message(str(error.get('Message') or code))}"
        if code in _THROTTLED:
            return RateLimited(message, code="upstream_rate_limited")
        if code in _CALLERS_FAULT:
            return InvalidRequest(message, code="upstream_invalid_request")
        if code in _TIMEOUTS:
            return UpstreamTimeout(message)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        kind = safe_message(code)[:100]
        return UpstreamError(message, extra={"upstream_error_type": kind, "upstream_status": status})
    if isinstance(exc, (ParserError, ResponseParserError)):
        return UpstreamError(
            f"Bedrock answered with a malformed response ({type(exc).__name__})", code=MALFORMED
        )
    return UpstreamError(f"Bedrock failed: {type(exc).__name__}")


def _image(part: dict[str, Any]) -> dict[str, Any]:
    inline = translate.data_url(translate.image_url(part))
    if inline is None:
        raise InvalidRequest("Bedrock takes images as base64 data URLs, not web URLs", param="messages")
    media_type, data = inline
    fmt = _IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise InvalidRequest(f"Bedrock does not take images of type {media_type}", param="messages")
    return {"image": {"format": fmt, "source": {"bytes": base64.b64decode(data)}}}


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        translate.append_turn(out, role, blocks)

    for message in translate.conversation(request):
        if message.role == "tool":
            result = {"toolUseId": message.tool_call_id or "", "content": [{"text": message.text()}]}
            add("user", [{"toolResult": result}])
        elif message.role == "assistant":
            blocks: list[dict[str, Any]] = [{"text": message.text()}] if message.text() else []
            for call in message.tool_calls or []:
                use = {
                    "toolUseId": call.get("id") or "",
                    "name": (call.get("function") or {}).get("name") or "",
                    "input": translate.tool_arguments(call),
                }
                blocks.append({"toolUse": use})
            add("assistant", blocks)
        else:
            content = []
            for part in translate.parts(message):
                if part.get("type") == "text":
                    content.append({"text": str(part.get("text", ""))})
                elif part.get("type") == "image_url":
                    content.append(_image(part))
                else:
                    raise InvalidRequest(
                        f"Content parts of type '{part.get('type')}' are not supported by Bedrock",
                        param="messages",
                    )
            add("user", content)
    return out


def to_converse(model: ModelInfo, request: ChatRequest) -> dict[str, Any]:
    params: dict[str, Any] = {"modelId": model.upstream, "messages": _messages(request)}
    system = "\n\n".join(filter(None, [translate.system_text(request), translate.json_instruction(request)]))
    if system:
        params["system"] = [{"text": system}]
    inference: dict[str, Any] = {"maxTokens": model.output_limit(request)}
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    stops = translate.stop_list(request)
    if stops:
        inference["stopSequences"] = stops
    params["inferenceConfig"] = inference
    tools = translate.function_tools(request)
    if tools and request.tool_choice != "none":
        config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": fn["name"],
                        "description": fn.get("description") or fn["name"],
                        "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
                    }
                }
                for fn in tools
            ]
        }
        forced = translate.forced_tool(request)
        if forced:
            config["toolChoice"] = {"tool": {"name": forced}}
        elif request.tool_choice == "required":
            config["toolChoice"] = {"any": {}}
        elif request.tool_choice == "auto":
            config["toolChoice"] = {"auto": {}}
        params["toolConfig"] = config
    return params


def usage_of(raw: dict[str, Any]) -> Usage:
    cached = int(raw.get("cacheReadInputTokens") or 0)
    prompt = int(raw.get("inputTokens") or 0) + cached + int(raw.get("cacheWriteInputTokens") or 0)
    return translate.usage(prompt, int(raw.get("outputTokens") or 0), cached)


def from_converse(model: ModelInfo, body: dict[str, Any]) -> ChatCompletion:
    blocks = ((body.get("output") or {}).get("message") or {}).get("content") or []
    text = "".join(str(b["text"]) for b in blocks if "text" in b)
    calls = [
        translate.function_call(
            b["toolUse"].get("toolUseId"), b["toolUse"].get("name"), b["toolUse"].get("input")
        )
        for b in blocks
        if "toolUse" in b
    ]
    return translate.completion(
        model,
        text=text,
        calls=calls,
        finish=FINISH_REASONS.get(str(body.get("stopReason")), "stop"),
        usage=usage_of(body.get("usage") or {}),
    )


class BedrockProvider:
    name = "bedrock"

    def __init__(self, client: Any) -> None:
        self._client = client

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        try:
            body = self._client.converse(**to_converse(model, request))
        except _BOTO_ERRORS as exc:
            raise error_from(exc) from exc
        with malformed("Bedrock"):
            return from_converse(model, surrogates.scrub(body))

    def embed(self, model: ModelInfo, request: EmbeddingRequest) -> Embedded:
        """InvokeModel in the model family's own body: Cohere Embed takes a batch of texts (at
        most ``COHERE_BATCH`` a call), Titan one text a call (a batch is one call per input)."""
        texts = request.texts()
        vectors: list[list[float]] = []
        tokens: int | None = 0
        if model.upstream.startswith("cohere."):
            for start in range(0, len(texts), COHERE_BATCH):
                body = {
                    "texts": texts[start : start + COHERE_BATCH],
                    "input_type": _COHERE_INPUT_TYPE,
                    "truncate": "END",
                }
                answer, counted = self._invoke(model, body)
                with malformed("Bedrock"):
                    vectors += [[float(x) for x in v] for v in _cohere_vectors(answer)]
                tokens = None if tokens is None or counted is None else tokens + counted
        else:
            for text in texts:
                titan: dict[str, Any] = {"inputText": text}
                if request.dimensions is not None:
                    titan["dimensions"] = request.dimensions
                answer, counted = self._invoke(model, titan)
                with malformed("Bedrock"):
                    vectors.append([float(x) for x in answer["embedding"]])
                    reported = answer.get("inputTextTokenCount", counted)
                tokens = None if tokens is None or reported is None else tokens + int(reported)
        if tokens is None:
            return Embedded(vectors, estimate_input(request), "estimate")
        return Embedded(vectors, tokens)

    def _invoke(self, model: ModelInfo, body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """One InvokeModel call: its JSON answer and the input token count Bedrock reports in
        a header (``X-Amzn-Bedrock-Input-Token-Count``), if it does."""
        try:
            response = self._client.invoke_model(
                modelId=model.upstream,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            raw = response["body"].read()
        except _BOTO_ERRORS as exc:
            raise error_from(exc) from exc
        headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
        counted = headers.get("x-amzn-bedrock-input-token-count")
        with malformed("Bedrock"):
            answer = surrogates.loads(raw)
            if not isinstance(answer, dict):
                raise TypeError("the answer is not a JSON object")
        return answer, int(counted) if counted and str(counted).isdigit() else None

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        try:
            response = self._client.converse_stream(**to_converse(model, request))
        except _BOTO_ERRORS as exc:
            raise error_from(exc) from exc
        return guarded(_chunks(model, response["stream"]), "Bedrock")


# What the vectors are for: documents (what a gateway caller embeds most; queries can use it too).
_COHERE_INPUT_TYPE = "search_document"
# Texts per Cohere Embed call on Bedrock (it refuses more).
COHERE_BATCH = 96


def _cohere_vectors(answer: dict[str, Any]) -> list[list[float]]:
    """Cohere's ``embeddings``: a list of vectors, or by type (``{"float": [...]}``)."""
    vectors = answer["embeddings"]
    if isinstance(vectors, dict):
        vectors = vectors["float"]
    if not isinstance(vectors, list):
        raise TypeError("embeddings is not a list")
    return vectors


def _chunks(model: ModelInfo, stream: Any) -> Iterator[ChatCompletionChunk]:
    cid, created = new_completion_id(), clock.now()
    tool_index: dict[int, int] = {}

    def chunk(delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=cid, created=created, model=model.id, choices=[ChunkChoice(delta=delta, finish_reason=finish)]
        )

    try:
        for raw in stream:
            event = surrogates.scrub(raw)
            if "messageStart" in event:
                yield chunk(ChunkDelta(role="assistant", content=""))
            elif "contentBlockStart" in event:
                start = event["contentBlockStart"]
                use = (start.get("start") or {}).get("toolUse")
                if use:
                    index = tool_index.setdefault(int(start.get("contentBlockIndex", 0)), len(tool_index))
                    call = {
                        "index": index,
                        "id": use.get("toolUseId"),
                        "type": "function",
                        "function": {"name": use.get("name"), "arguments": ""},
                    }
                    yield chunk(ChunkDelta(tool_calls=[call]))
            elif "contentBlockDelta" in event:
                block = event["contentBlockDelta"]
                delta = block.get("delta") or {}
                if "text" in delta:
                    yield chunk(ChunkDelta(content=str(delta["text"])))
                elif "toolUse" in delta:
                    index = tool_index.get(int(block.get("contentBlockIndex", 0)), 0)
                    call = {"index": index, "function": {"arguments": str(delta["toolUse"].get("input", ""))}}
                    yield chunk(ChunkDelta(tool_calls=[call]))
            elif "messageStop" in event:
                reason = str(event["messageStop"].get("stopReason"))
                yield chunk(ChunkDelta(), FINISH_REASONS.get(reason, "stop"))
            elif "metadata" in event:
                usage = usage_of(event["metadata"].get("usage") or {})
                yield ChatCompletionChunk(id=cid, created=created, model=model.id, choices=[], usage=usage)
    except _BOTO_ERRORS as exc:
        raise error_from(exc) from exc
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def create() -> BedrockProvider:
    cfg = settings()
    timeout = os.environ.get("BEDROCK_TIMEOUT_SECONDS") or str(cfg.upstream_timeout_seconds)
    client = boto3.client(
        "bedrock-runtime",
        region_name=os.environ.get("BEDROCK_REGION") or cfg.region,
        endpoint_url=os.environ.get("BEDROCK_ENDPOINT_URL") or None,
        config=Config(
            connect_timeout=5,
            read_timeout=float(timeout),
            retries={"total_max_attempts": 1, "mode": "standard"},
            tcp_keepalive=True,
        ),
    )
    return BedrockProvider(client)
