"""One model call from start to finish: resolve, authorise, admit, call, meter."""

from __future__ import annotations

from aigw.catalog import ModelInfo, catalog
from aigw.chat import ChatCompletion, ChatRequest, ModelCard, ModelList
from aigw.errors import GatewayError, InvalidRequest
from aigw.keys import ApiKey, require_model
from aigw.metering import open_meter
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


def chat_completion(
    key: ApiKey, request: ChatRequest, *, request_id: str, route: str = CHAT_ROUTE
) -> ChatCompletion:
    if request.stream:
        raise InvalidRequest("Streaming is not supported yet", code="stream_unsupported", param="stream")
    model = resolve_model(key, request.model)
    provider = get_provider(model.provider)
    meter = open_meter(key, model, request, request_id=request_id, route=route)
    try:
        completion = provider.complete(model, request)
    except GatewayError as exc:
        meter.fail(exc)
        raise
    except Exception:
        meter.fail(GatewayError("internal error"))
        raise
    completion.model = request.model
    meter.settle(completion.usage)
    return completion
