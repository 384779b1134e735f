"""Vendor adapters, imported only when a model of theirs is called (keeps cold starts light)."""

from __future__ import annotations

import importlib
import threading

from aigw.errors import NotFound
from aigw.providers.base import Provider

_MODULES = {
    "mock": "aigw.providers.mock",
    "openai": "aigw.providers.openai",
}
_instances: dict[str, Provider] = {}
_lock = threading.Lock()


def get_provider(name: str) -> Provider:
    provider = _instances.get(name)
    if provider is not None:
        return provider
    module_name = _MODULES.get(name)
    if module_name is None:
        raise NotFound(f"No provider named '{name}'", code="provider_not_found", param="model")
    with _lock:
        provider = _instances.get(name)
        if provider is None:
            provider = importlib.import_module(module_name).create()
            _instances[name] = provider
    return provider


def reset() -> None:
    """Drop provider instances (and their HTTP clients); tests use it after changing settings."""
    with _lock:
        _instances.clear()


__all__ = ["Provider", "get_provider", "reset"]
