"""One model call from start to finish: resolve, authorise, call, meter."""

from __future__ import annotations

import time

from aigw import clock
from aigw.catalog import ModelInfo, catalog
from aigw.chat import ChatCompletion, ChatRequest, ModelCard, ModelList
from aigw.errors import GatewayError, InvalidRequest
from aigw.keys import ApiKey, require_model
from aigw.metering import UsageRecord, record
from aigw.pricing import cost_micro_usd
from aigw.providers import get_provider

CHAT_ROUTE = "/v1/chat/completions"


def list_models(key: ApiKey) -> ModelList:
    cards = [
        ModelCard(id=m.id, created=m.created, owned_by=m.provider)
        for m in catalog().all()
        if key.allows_model(m.id)
    ]
    return ModelList(data=cards)


def resolve_model(key: ApiKey, requested: str) -> ModelInfo:
    model = catalog().resolve(requested)
    require_model(key, model.id)
    return model


def chat_completion(key: ApiKey, request: ChatRequest, *, request_id: str) -> ChatCompletion:
    if request.stream:
        raise InvalidRequest("Streaming is not supported yet", code="stream_unsupported", param="stream")
    model = resolve_model(key, request.model)
    provider = get_provider(model.provider)
    started = time.monotonic()
    try:
        completion = provider.complete(model, request)
    except GatewayError as exc:
        record(_usage(key, model, request_id, started, status=exc.status, error_code=exc.code))
        raise
    completion.model = request.model
    record(
        _usage(
            key,
            model,
            request_id,
            started,
            status=200,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cached_tokens=completion.usage.cached_tokens,
            cost=cost_micro_usd(model, completion.usage),
        )
    )
    return completion


def _usage(
    key: ApiKey,
    model: ModelInfo,
    request_id: str,
    started: float,
    *,
    status: int,
    error_code: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cached_tokens: int = 0,
    cost: int = 0,
) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        team_id=key.team_id,
        key_id=key.key_id,
        model=model.id,
        provider=model.provider,
        route=CHAT_ROUTE,
        status=status,
        error_code=error_code,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cost_micro_usd=cost,
        latency_ms=int((time.monotonic() - started) * 1000),
        usage_source="provider" if status == 200 else "none",
        created_at_ms=clock.now_ms(),
    )
