"""Vendor adapters, imported only when a model of theirs is called (keeps cold starts light).

The registry maps a catalog ``provider`` name to ``module:factory``; several names can share
one module (every OpenAI-compatible server is the OpenAI adapter with another base URL).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from aigw.credentials import configured, missing_settings
from aigw.errors import NotFound, UpstreamError
from aigw.providers.base import Provider

_FACTORIES = {
    "mock": "aigw.providers.mock:create",
    "openai": "aigw.providers.openai:create",
    "azure": "aigw.providers.openai:create_azure",
    "groq": "aigw.providers.openai:create",
    "together": "aigw.providers.openai:create",
    "deepseek": "aigw.providers.openai:create",
    "ollama": "aigw.providers.openai:create",
    "vllm": "aigw.providers.openai:create",
    "mistral": "aigw.providers.mistral:create",
    "anthropic": "aigw.providers.anthropic:create",
    "gemini": "aigw.providers.gemini:create",
    "bedrock": "aigw.providers.bedrock:create",
}
_SHARED_FACTORY = {"groq", "together", "deepseek", "ollama", "vllm", "openai"}
_instances: dict[str, Provider] = {}
_lock = threading.Lock()


def names() -> list[str]:
    return sorted(_FACTORIES)


def not_configured(requested: str, models: list[str], providers: list[str]) -> UpstreamError:
    """The error for a model or alias none of whose targets can be called here."""
    needs = [
        f"{model} needs {' and '.join(missing_settings(p))}"
        for model, p in zip(models, providers, strict=True)
    ]
    what = f"model '{requested}'" if [requested] == models else f"'{requested}' ({', '.join(models)})"
    return UpstreamError(
        f"No provider behind {what} is configured on this gateway: {'; '.join(needs)}. "
        "Locally, put the key in .env.local; in AWS, in the SSM parameter the stack names.",
        code="provider_not_configured",
        param="model",
    )


def _build(name: str) -> Provider:
    module_name, _, attr = _FACTORIES[name].partition(":")
    factory: Callable[..., Provider] = getattr(importlib.import_module(module_name), attr)
    return factory(name) if name in _SHARED_FACTORY else factory()


def get_provider(name: str) -> Provider:
    provider = _instances.get(name)
    if provider is not None:
        return provider
    if name not in _FACTORIES:
        raise NotFound(f"No provider named '{name}'", code="provider_not_found", param="model")
    with _lock:
        provider = _instances.get(name)
        if provider is None:
            provider = _build(name)
            _instances[name] = provider
    return provider


def reset() -> None:
    """Drop provider instances (and their HTTP clients); tests use it after changing settings."""
    with _lock:
        _instances.clear()


__all__ = ["Provider", "configured", "get_provider", "missing_settings", "names", "not_configured", "reset"]
