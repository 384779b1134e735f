"""The one small interface every vendor adapter implements, and what adapters share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import httpx

from aigw.chat import ChatCompletion, ChatCompletionChunk, ChatRequest, ModelInfo
from aigw.config import settings
from aigw.credentials import resolve_secret


class Provider(Protocol):
    """Translates the unified request to a vendor's wire format and the answer back.

    Raises :class:`aigw.errors.UpstreamError` (or a subclass, or ``RateLimited``) for
    vendor failures; never lets an ``httpx`` exception escape.

    ``stream`` contacts the vendor before it returns, so a refusal (429, 5xx, bad key) is
    raised there, while nothing has been sent to the caller and another provider can still
    be tried. The iterator it returns yields unified chunks; the vendor's usage, when it
    reports one, arrives as a chunk with ``usage`` set and no choices. Closing the iterator
    closes the vendor connection.
    """

    name: str

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion: ...

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]: ...


@dataclass(frozen=True)
class VendorConfig:
    """Where a vendor lives and how to authenticate, from ``<PREFIX>_*`` environment variables.

    ``<PREFIX>_API_KEY`` (local), or ``<PREFIX>_API_KEY_PARAMETER``: an SSM parameter name or a
    Secrets Manager ARN (AWS). ``<PREFIX>_BASE_URL`` overrides the vendor's URL (tests point it
    at loopback fakes), ``<PREFIX>_TIMEOUT_SECONDS`` the read timeout.
    """

    vendor: str
    base_url: str
    api_key: str | None
    api_key_parameter: str | None
    timeout: float
    prefix: str = ""

    @classmethod
    def from_env(cls, prefix: str, vendor: str, default_base_url: str) -> VendorConfig:
        def env(name: str) -> str | None:
            return os.environ.get(f"{prefix}_{name}", "").strip() or None

        timeout = env("TIMEOUT_SECONDS")
        return cls(
            vendor=vendor,
            base_url=(env("BASE_URL") or default_base_url).rstrip("/"),
            api_key=env("API_KEY"),
            api_key_parameter=env("API_KEY_PARAMETER"),
            timeout=float(timeout) if timeout else float(settings().upstream_timeout_seconds),
            prefix=prefix,
        )

    def secret(self) -> str:
        setting = f"{self.prefix}_API_KEY" if self.prefix else None
        return resolve_secret(self.api_key, self.api_key_parameter, what=self.vendor, setting=setting)

    def client(self) -> httpx.Client:
        # One client per provider per container: connections are pooled across invocations.
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
