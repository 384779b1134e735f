"""A cheap, deterministic token estimate for prompts (used where a provider reports none,
and to size reservations before a call). Roughly 4 characters a token, as OpenAI documents."""

from __future__ import annotations

from aigw.chat import ChatMessage

_PER_MESSAGE_OVERHEAD = 4


def estimate_text(text: str) -> int:
    return (len(text) + 3) // 4 if text else 0


def estimate_messages(messages: list[ChatMessage]) -> int:
    return sum(estimate_text(m.text()) + _PER_MESSAGE_OVERHEAD for m in messages) + 2
