"""Anthropic-format ingress: POST /v1/messages, for Claude SDK clients, to any provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import invocation, keys, messages_api, streaming, web
from aigw.keys import ApiKey
from aigw.messages_api import CountTokensRequest, MessagesRequest

logger = Logger(service="aigw-messages")
app = web.resolver()


def _authenticate(event: Mapping[str, Any]) -> ApiKey:
    # Claude SDKs send the key as x-api-key; Bearer works too.
    api_key = web.header(event, "x-api-key")
    if api_key:
        return keys.authenticate(api_key)
    return keys.authenticate(keys.parse_bearer(web.header(event, "authorization")))


@app.post(messages_api.ROUTE)
def messages(body: MessagesRequest) -> Response[str]:
    key = web.current_key(app)
    request = messages_api.to_chat_request(body)
    request_id = web.request_id(app)
    if request.stream:
        stream = invocation.stream_chat_completion(
            key, request, request_id=request_id, route=messages_api.ROUTE
        )
        events = messages_api.anthropic_events(stream, body.model)
        return streaming.respond(streaming.event_stream(events, on_close=stream.close))
    completion = invocation.chat_completion(key, request, request_id=request_id, route=messages_api.ROUTE)
    return web.json_response(messages_api.from_completion(completion))


@app.post("/v1/messages/count_tokens")
def count_tokens(body: CountTokensRequest) -> Response[str]:
    key = web.current_key(app)
    return web.json_response(messages_api.count_tokens(key, body))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | streaming.StreamingResponse:
    return web.handle_streaming(app, event, context, authenticate=_authenticate)
