"""OpenAI (and any server speaking its chat completions wire format) over httpx."""

from __future__ import annotations

import json
from typing import Any

import httpx

from aigw import clock
from aigw.catalog import ModelInfo
from aigw.chat import ChatCompletion, ChatRequest
from aigw.config import settings
from aigw.credentials import resolve_secret
from aigw.providers.upstream import raise_for_upstream, transport_errors


class OpenAIProvider:
    name = "openai"

    def __init__(self, base_url: str, api_key: str | None, api_key_parameter: str | None, timeout: float):
        self._base_url = base_url
        self._api_key = api_key
        self._api_key_parameter = api_key_parameter
        # One client per container: connection pooling across invocations.
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def _headers(self) -> dict[str, str]:
        key = resolve_secret(self._api_key, self._api_key_parameter, what="OpenAI")
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def _payload(self, model: ModelInfo, request: ChatRequest) -> dict[str, Any]:
        payload = request.model_dump(exclude_none=True)
        payload["model"] = model.upstream
        payload.pop("stream", None)
        payload.pop("stream_options", None)
        return payload

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        headers = self._headers()
        with transport_errors("OpenAI"):
            response = self._client.post(
                f"{self._base_url}/chat/completions",
                content=json.dumps(self._payload(model, request)),
                headers=headers,
            )
        raise_for_upstream(response, "OpenAI")
        body = response.json()
        body["model"] = model.id
        body.setdefault("created", clock.now())
        return ChatCompletion.model_validate(body)


def create() -> OpenAIProvider:
    cfg = settings()
    return OpenAIProvider(
        base_url=cfg.openai_base_url,
        api_key=cfg.openai_api_key,
        api_key_parameter=cfg.openai_api_key_parameter,
        timeout=cfg.upstream_timeout_seconds,
    )
