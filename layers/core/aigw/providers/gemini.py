"""Google Gemini (``generateContent`` / ``streamGenerateContent?alt=sse``), both ways."""

from __future__ import annotations

import json
import secrets
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
from aigw.embeddings import Embedded, EmbeddingRequest, estimate_input
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

# Inputs per batchEmbedContents call (Gemini refuses more).
EMBED_BATCH = 100
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


def _finish(reason: str | None, has_calls: bool) -> str | None:
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def _user_parts(message: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in translate.parts(message):
        if part.get("type") == "text":
            out.append({"text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            url = translate.image_url(part)
            inline = translate.data_url(url)
            if inline is None:
                out.append({"fileData": {"mimeType": "image/*", "fileUri": url}})
            else:
                out.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        else:
            raise InvalidRequest(
                f"Content parts of type '{part.get('type')}' are not supported by Gemini", param="messages"
            )
    return out


def _contents(request: ChatRequest) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool call id -> function name: Gemini answers tools by name
    out: list[dict[str, Any]] = []

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        translate.append_turn(out, role, parts, field="parts")

    for message in translate.conversation(request):
        if message.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": message.text()}] if message.text() else []
            for call in message.tool_calls or []:
                name = str((call.get("function") or {}).get("name") or "")
                names[str(call.get("id"))] = name
                parts.append({"functionCall": {"name": name, "args": translate.tool_arguments(call)}})
            add("model", parts)
        elif message.role == "tool":
            try:
                result: Any = json.loads(message.text())
            except json.JSONDecodeError:
                result = message.text()
            response = result if isinstance(result, dict) else {"result": result}
            name = names.get(str(message.tool_call_id), message.name or "tool")
            add("user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            add("user", _user_parts(message))
    return out


def to_gemini(model: ModelInfo, request: ChatRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {"contents": _contents(request)}
    system = translate.system_text(request)
    if system:
        payload["systemInstruction"] = {"parts": [{"text": system}]}
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ):
        value = getattr(request, ours)
        if value is not None:
            config[theirs] = value
    config["maxOutputTokens"] = model.output_limit(request)
    stops = translate.stop_list(request)
    if stops:
        config["stopSequences"] = stops
    fmt = request.response_format or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    payload["generationConfig"] = config
    tools = translate.function_tools(request)
    if tools:
        payload["tools"] = [
            {
                "functionDeclarations": [
                    {k: v for k, v in fn.items() if k in ("name", "description", "parameters")}
                    for fn in tools
                ]
            }
        ]
        forced = translate.forced_tool(request)
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(str(request.tool_choice))
        if forced:
            payload["toolConfig"] = {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [forced]}
            }
        elif mode:
            payload["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    return payload


def usage_of(meta: dict[str, Any]) -> Usage:
    prompt = int(meta.get("promptTokenCount") or 0)
    # Thinking tokens are billed as output.
    completion = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    return translate.usage(prompt, completion, int(meta.get("cachedContentTokenCount") or 0))


def _call(part: dict[str, Any]) -> dict[str, Any]:
    fn = part["functionCall"]
    return translate.function_call(
        str(fn.get("id") or "call_" + secrets.token_hex(8)), fn.get("name"), fn.get("args")
    )


def _candidate_parts(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first candidate and its parts; TypeError when they are not the documented shape (a
    prompt blocked by safety settings has no candidate: no parts, and no error)."""
    candidates = body.get("candidates") or [{}]
    if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
        raise TypeError("candidates is not a list of candidates")
    candidate = candidates[0]
    content = candidate.get("content") or {}
    parts = (content.get("parts") or []) if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise TypeError("candidates[0].content.parts is not a list of parts")
    return candidate, parts


def from_gemini(model: ModelInfo, body: dict[str, Any]) -> ChatCompletion:
    candidate, parts = _candidate_parts(body)
    text = "".join(str(p["text"]) for p in parts if "text" in p and not p.get("thought"))
    calls = [_call(p) for p in parts if "functionCall" in p]
    return translate.completion(
        model,
        text=text,
        calls=calls,
        finish=_finish(candidate.get("finishReason"), bool(calls)) or "stop",
        usage=usage_of(body.get("usageMetadata") or {}),
        completion_id=str(body["responseId"]) if body.get("responseId") else None,
    )


class GeminiProvider:
    name = "gemini"

    def __init__(self, config: VendorConfig) -> None:
        self._config = config
        self._client = config.client()

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._config.secret(), "Content-Type": "application/json"}

    def _url(self, model: ModelInfo, method: str) -> str:
        return f"{self._config.base_url}/v1beta/models/{model.upstream}:{method}"

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        body = post_json(
            self._client,
            self._url(model, "generateContent"),
            to_gemini(model, request),
            self._headers(),
            "Gemini",
        )
        if not isinstance(body, dict):
            raise UpstreamError("Gemini answered with an unexpected body", code=MALFORMED)
        with malformed("Gemini"):
            return from_gemini(model, body)

    def embed(self, model: ModelInfo, request: EmbeddingRequest) -> Embedded:
        """``batchEmbedContents``: one request per input, at most ``EMBED_BATCH`` inputs per call
        (Gemini's limit); Gemini reports no token count."""
        texts = request.texts()
        one: dict[str, Any] = {"model": f"models/{model.upstream}"}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            payload = {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in batch]}
            body = post_json(
                self._client, self._url(model, "batchEmbedContents"), payload, self._headers(), "Gemini"
            )
            with malformed("Gemini"):
                vectors += [[float(x) for x in row["values"]] for row in body["embeddings"]]
        return Embedded(vectors, estimate_input(request), "estimate")

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        response = open_stream(self._client, url, to_gemini(model, request), self._headers(), "Gemini")
        return guarded(_chunks(model, events(response, "Gemini")), "Gemini")


def _chunks(model: ModelInfo, stream: Generator[Event]) -> Iterator[ChatCompletionChunk]:
    cid, created = new_completion_id(), clock.now()
    usage: dict[str, Any] | None = None
    calls = 0

    def chunk(delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=cid, created=created, model=model.id, choices=[ChunkChoice(delta=delta, finish_reason=finish)]
        )

    try:
        yield chunk(ChunkDelta(role="assistant", content=""))
        for event in stream:
            body = event_json(event)
            if "error" in body:  # a failure after the stream began comes as an error object
                error = body["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise UpstreamError(f"Gemini error: {safe_message(str(message))}")
            usage = body.get("usageMetadata") or usage  # cumulative: the last one counts
            candidate, parts = _candidate_parts(body)
            for part in parts:
                if "text" in part and not part.get("thought"):
                    yield chunk(ChunkDelta(content=str(part["text"])))
                elif "functionCall" in part:
                    yield chunk(ChunkDelta(tool_calls=[{"index": calls, **_call(part)}]))
                    calls += 1
            finish = _finish(candidate.get("finishReason"), calls > 0)
            if finish:
                yield chunk(ChunkDelta(), finish)
        if usage is not None:
            yield ChatCompletionChunk(
                id=cid, created=created, model=model.id, choices=[], usage=usage_of(usage)
            )
    finally:
        stream.close()


def create() -> GeminiProvider:
    return GeminiProvider(
        VendorConfig.from_env("GEMINI", "Gemini", "https://generativelanguage.googleapis.com")
    )
