"""OpenAI-compatible invocation: POST /v1/chat/completions and GET /v1/models."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import invocation, web
from aigw.chat import ChatCompletion, ChatRequest, ModelList

logger = Logger(service="aigw-invoke")
app = web.resolver()


@app.post(
    "/v1/chat/completions",
    responses={
        200: {"description": "A chat completion", "content": {"application/json": {"model": ChatCompletion}}}
    },
)
def chat_completions(request: ChatRequest) -> Response[str]:
    key = web.current_key(app)
    completion = invocation.chat_completion(key, request, request_id=web.request_id(app))
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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context)
