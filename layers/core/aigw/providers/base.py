"""The one small interface every vendor adapter implements."""

from __future__ import annotations

from typing import Protocol

from aigw.catalog import ModelInfo
from aigw.chat import ChatCompletion, ChatRequest


class Provider(Protocol):
    """Translates the unified request to a vendor's wire format and the answer back.

    Raises :class:`aigw.errors.UpstreamError` (or a subclass, or ``RateLimited``) for
    vendor failures; never lets an ``httpx`` exception escape.
    """

    name: str

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion: ...
