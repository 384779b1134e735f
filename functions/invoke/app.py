"""OpenAI-compatible invocation: chat completions, embeddings, the Responses API, models; and
OpenAI-shaped 404/405 answers for every other /v1 path."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import embeddings, invocation, response_cache, responses_api, streaming, web
from aigw.billing.admission import Estimate
from aigw.chat import ChatCompletion, ChatRequest, ModelCard, ModelList, Usage
from aigw.embeddings import EmbeddingRequest
from aigw.responses_api import ResponsesRequest

logger = Logger(service="aigw-invoke")
CHAT = "/v1/chat/completions"
EMBEDDINGS = embeddings.ROUTE
app = web.resolver()


@app.post(
    "/v1/chat/completions",
    responses={
        200: {
            "description": "A chat completion, or with stream: true Server-Sent Events of chunks",
            "content": {
                "application/json": {"model": ChatCompletion},
                # Events are chunk objects, then the literal [DONE]: any value.
                "text/event-stream": {"schema": {"description": "chat.completion.chunk events, then [DONE]"}},
            },
        }
    },
)
def chat_completions(request: ChatRequest) -> Response[str]:
    key = web.current_key(app)
    rid = web.request_id(app)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    payload = request.model_dump(exclude_none=True)
    lookup = response_cache.lookup_for(key, CHAT, payload, request.temperature, app.current_event.headers)
    hit = response_cache.find(lookup, key, request.model) if lookup is not None else None
    if hit is not None:
        response_cache.bill_hit(key, hit, request, request_id=rid, route=CHAT)
        completion = ChatCompletion.model_validate(hit.body)
        if request.stream:
            replayed = response_cache.Replayed(response_cache.replay(completion))
            events = streaming.openai_events(replayed, include_usage=include_usage)  # type: ignore[arg-type]
            return streaming.respond(streaming.event_stream(events))
        return web.json_response(completion)
    if request.stream:
        stream = invocation.stream_chat_completion(key, request, request_id=rid)
        source: Any = stream
        if lookup is not None:
            source = response_cache.Recording(stream, lookup)
            response_cache.mark_miss()
        events = streaming.openai_events(source, include_usage=include_usage)
        return streaming.respond(streaming.event_stream(events, on_close=stream.close))
    completion = invocation.chat_completion(key, request, request_id=rid)
    if lookup is not None:
        body = completion.model_dump(exclude_none=True)
        response_cache.store(lookup, completion.served_by, body, completion.usage)
        response_cache.mark_miss()
    return web.json_response(completion)


@app.get(
    "/v1/models",
    responses={
        200: {"description": "Models this key may use", "content": {"application/json": {"model": ModelList}}}
    },
)
def models() -> Response[str]:
    key = web.current_key(app)
    return web.json_response(invocation.list_models(key))


@app.get(
    "/v1/models/<model_id>",
    responses={
        200: {
            "description": "One model this key may use",
            "content": {"application/json": {"model": ModelCard}},
        }
    },
)
def model(model_id: str) -> Response[str]:
    key = web.current_key(app)
    return web.json_response(invocation.retrieve_model(key, unquote(model_id)))


@app.post("/v1/embeddings")
def create_embeddings(request: EmbeddingRequest) -> Response[str]:
    key = web.current_key(app)
    rid = web.request_id(app)
    # Vectors are kept as floats: the same entry answers float and base64 callers.
    payload = request.model_dump(exclude_none=True, exclude={"encoding_format"})
    lookup = response_cache.lookup_for(key, EMBEDDINGS, payload, None, app.current_event.headers)
    hit = response_cache.find(lookup, key, request.model) if lookup is not None else None
    if hit is not None:
        estimate = Estimate(prompt_tokens=embeddings.estimate_input(request), produces_output=False)
        response_cache.bill_hit(key, hit, estimate, request_id=rid, route=EMBEDDINGS)
        return web.json_response(embeddings.reencode(hit.body, request.encoding_format))
    floats = request.model_copy(update={"encoding_format": "float"})
    body, served_by = embeddings.create(key, floats, request_id=rid)
    if lookup is not None:
        tokens = body["usage"]["prompt_tokens"]
        response_cache.store(lookup, served_by, body, Usage(prompt_tokens=tokens, total_tokens=tokens))
        response_cache.mark_miss()
    return web.json_response(embeddings.reencode(body, request.encoding_format))


@app.post("/v1/responses")
def responses(request: ResponsesRequest) -> Response[str]:
    key = web.current_key(app)
    if request.stream:
        return streaming.respond(responses_api.stream(key, request, request_id=web.request_id(app)))
    return web.json_response(responses_api.create(key, request, request_id=web.request_id(app)))


@app.get("/v1/responses/<response_id>")
def stored_response(response_id: str) -> Response[str]:
    return web.json_response(responses_api.retrieve(web.current_key(app), response_id))


@app.delete("/v1/responses/<response_id>")
def delete_response(response_id: str) -> Response[str]:
    return web.json_response(responses_api.delete(web.current_key(app), response_id))


# Every other /v1 path and method lands here (the template's /v1/{proxy+}): no key needed to be
# told a URL does not exist.
UNKNOWN = "/v1/{proxy+}"
MODEL_RESOURCE = "/v1/models/{model+}"


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | streaming.StreamingResponse:
    if event.get("resource") == MODEL_RESOURCE:
        # Model ids hold a slash ("openai/gpt-4o"): one path segment for the router.
        model_id = unquote(str((event.get("pathParameters") or {}).get("model") or ""))
        event["path"] = "/v1/models/" + quote(model_id, safe="")
    if event.get("resource") == UNKNOWN:
        return web.unknown_route(event)
    return web.handle_streaming(app, event, context)
